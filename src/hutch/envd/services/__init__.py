"""envd's Connect services, one package per protobuf service."""
