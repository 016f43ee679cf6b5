"""``hutch node``: one machine of a cluster, serving its runtime to the API replicas (the node API) and its
sandboxes' traffic to the proxies, registered and heartbeating in the shared catalog."""
