# Hutch on Nomad, part two: `hutch node` on every client that hosts sandboxes (a system job), from the same
# image as the API and the proxy (hutch.nomad.hcl). docs/deploy.md says how to start it; in short:
#
#   nomad var put nomad/jobs/hutch-node cluster_secret=… catalog_url=postgresql://…
#   nomad job run -var image=registry.example.com/hutch:0.1.0 deploy/nomad/hutch-node.nomad.hcl
#
# The cluster secret must be the one in nomad/jobs/hutch. The task is a privileged docker container in the
# client's own network and PID namespaces, with the host's cgroups, kernel modules, devices and three host
# directories; the clients' docker plugin must allow that:
#
#   plugin "docker" {
#     config {
#       allow_privileged = true
#       volumes {
#         enabled = true
#       }
#     }
#   }

variable "image" {
  type        = string
  description = "The image built from deploy/Containerfile, in a registry the Nomad clients reach."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "node_pool" {
  type        = string
  default     = "default"
  description = "The Nomad node pool whose clients host sandboxes."
}

variable "subnet" {
  type        = string
  default     = "10.11.0.0/16"
  description = "The sandboxes' addresses, local to each client: must overlap no network the clients use."
}

variable "egress_interface" {
  type        = string
  default     = "auto"
  description = "The interface sandboxes reach the internet through: auto (the default route's), off, or a name."
}

locals {
  secrets = "nomad/jobs/hutch-node"
}

job "hutch-node" {
  type        = "system"
  datacenters = var.datacenters
  node_pool   = var.node_pool

  # A new version replaces the node on one client at a time. The node that stops lets go of its sandboxes
  # and the new one adopts them: they are unreachable only while it starts.
  update {
    max_parallel = 1
    stagger      = "1m"
  }

  group "node" {
    network {
      mode = "host"
      # The node API (API replicas create, kill and pause sandboxes through it) and the sandbox traffic
      # listener (proxies reach sandboxes through it); both answer only callers with the cluster secret.
      port "node" {
        static = 5007
      }
      port "traffic" {
        static = 5008
      }
    }

    service {
      name         = "hutch-node"
      provider     = "nomad"
      port         = "node"
      address_mode = "host"

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 3
      interval = "30m"
      delay    = "15s"
      mode     = "delay"
    }

    task "node" {
      driver = "docker"
      # Time to stop cleanly (the docker plugin's max_kill_timeout may cap it).
      kill_timeout = "60s"

      config {
        image        = var.image
        args         = ["node"]
        # Overlays, loop devices, network namespaces, nftables, cgroups, crun and runsc: root on the client.
        privileged   = true
        # Sandboxes' network namespaces, veths and firewall rules live in the client's own network stack.
        network_mode = "host"
        # Sandboxes outlive the container (a restart, an upgrade) and the next node adopts them: their
        # processes must not live in a PID namespace that ends with it.
        pid_mode = "host"
        volumes = [
          # Sandboxes' overlays and disks are mounted here: the mounts reach the client and outlive the task.
          "/var/lib/hutch:/var/lib/hutch:rshared",
          # crun's and runsc's state of the running sandboxes, for the next node.
          "/run/hutch:/run/hutch",
          "/var/cache/hutch:/var/cache/hutch",
          "/sys/fs/cgroup:/sys/fs/cgroup",
          "/lib/modules:/lib/modules:ro",
          # Named network namespaces are bind mounts under /run/netns: they must reach the client.
          "/run/netns:/run/netns:rshared",
          # The client's devices, loop devices made after the container started among them.
          "/dev:/dev",
        ]
      }

      env {
        HUTCH_CLUSTER__SECRET_FILE      = "${NOMAD_SECRETS_DIR}/cluster-secret"
        HUTCH_RUNTIME__NODE_ID          = "${node.unique.name}"
        HUTCH_NODE__HOST                = "0.0.0.0"
        HUTCH_NODE__PORT                = "${NOMAD_PORT_node}"
        HUTCH_NODE__TRAFFIC_PORT        = "${NOMAD_PORT_traffic}"
        HUTCH_NODE__ADVERTISE_HOST      = "${NOMAD_IP_node}"
        HUTCH_RUNTIME__SUBNET           = var.subnet
        HUTCH_RUNTIME__EGRESS_INTERFACE = var.egress_interface
      }

      template {
        data        = "{{ with nomadVar \"${local.secrets}\" }}{{ .cluster_secret }}{{ end }}"
        destination = "secrets/cluster-secret"
        perms       = "0400"
      }

      template {
        data        = "{{ with nomadVar \"${local.secrets}\" }}HUTCH_CATALOG__URL={{ .catalog_url | toJSON }}{{ end }}"
        destination = "secrets/catalog.env"
        env         = true
      }

      # What the node itself uses. Sandboxes have cgroups of their own and do not count here.
      resources {
        cpu    = 1000
        memory = 1024
      }
    }
  }
}
