# Hutch on Nomad, part one: `hutch api` and `hutch proxy`, stateless, any number of each. The machines that
# host sandboxes run `hutch node` from the system job in hutch-node.nomad.hcl. docs/deploy.md says how to
# start both; in short:
#
#   nomad var put nomad/jobs/hutch cluster_secret=… operator_key=… catalog_url=postgresql://…
#   nomad job run -var domain=sandboxes.example.com -var image=registry.example.com/hutch:0.1.0 \
#       deploy/nomad/hutch.nomad.hcl
#
# The secrets and the catalog's URL (it carries the database password) come from that Nomad Variable, which
# the job's tasks may read without any ACL policy of yours; nothing secret is in the job itself. Services
# are registered in Nomad's own catalog (no Consul needed). Nomad clients need the docker driver.

variable "image" {
  type        = string
  description = "The image built from deploy/Containerfile, in a registry the Nomad clients reach."
}

variable "domain" {
  type        = string
  description = "E2B_DOMAIN: the API at https://api.<domain>, sandboxes' ports at https://<port>-<id>.<domain>."
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "api_count" {
  type    = number
  default = 2
}

variable "proxy_count" {
  type    = number
  default = 2
}

variable "api_url" {
  type        = string
  default     = ""
  description = "Where proxies reach the API to wake paused sandboxes; empty: https://api.<domain>, through your load balancer."
}

locals {
  api_url = var.api_url != "" ? var.api_url : "https://api.${var.domain}"
  # The uid of the image's unprivileged user, hutch, which the API and proxy run as: it owns their secrets.
  uid = 10001
  # The Nomad Variable that holds the secrets; tasks of this job read it by their implicit policy.
  secrets = "nomad/jobs/hutch"
}

job "hutch" {
  type        = "service"
  datacenters = var.datacenters

  update {
    max_parallel     = 1
    min_healthy_time = "10s"
    healthy_deadline = "5m"
    auto_revert      = true
  }

  group "api" {
    count = var.api_count

    network {
      port "http" {
        to = 3000
      }
    }

    service {
      name     = "hutch-api"
      provider = "nomad"
      port     = "http"

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "api" {
      driver = "docker"
      user   = "hutch"

      config {
        image = var.image
        args  = ["api"]
        ports = ["http"]
      }

      env {
        HUTCH_CLUSTER__SECRET_FILE   = "${NOMAD_SECRETS_DIR}/cluster-secret"
        HUTCH_API__OPERATOR_KEY_FILE = "${NOMAD_SECRETS_DIR}/operator-key"
        HUTCH_API__HOST              = "0.0.0.0"
        HUTCH_API__PORT              = "3000"
        HUTCH_API__FORWARDED_ALLOW_IPS = "[\"*\"]"
        HUTCH_PROXY__DOMAIN          = var.domain
      }

      template {
        data        = "{{ with nomadVar \"${local.secrets}\" }}{{ .cluster_secret }}{{ end }}"
        destination = "secrets/cluster-secret"
        perms       = "0400"
        uid         = local.uid
        gid         = local.uid
      }

      template {
        data        = "{{ with nomadVar \"${local.secrets}\" }}{{ .operator_key }}{{ end }}"
        destination = "secrets/operator-key"
        perms       = "0400"
        uid         = local.uid
        gid         = local.uid
      }

      template {
        data        = "{{ with nomadVar \"${local.secrets}\" }}HUTCH_CATALOG__URL={{ .catalog_url | toJSON }}{{ end }}"
        destination = "secrets/catalog.env"
        env         = true
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }

  group "proxy" {
    count = var.proxy_count

    network {
      port "http" {
        to = 49983
      }
    }

    service {
      name     = "hutch-proxy"
      provider = "nomad"
      port     = "http"

      # The proxy routes by Host: its own /health answers the name localhost.
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
        header {
          Host = ["localhost"]
        }
      }
    }

    task "proxy" {
      driver = "docker"
      user   = "hutch"

      config {
        image = var.image
        args  = ["proxy"]
        ports = ["http"]
      }

      env {
        HUTCH_CLUSTER__SECRET_FILE = "${NOMAD_SECRETS_DIR}/cluster-secret"
        HUTCH_PROXY__HOST          = "0.0.0.0"
        HUTCH_PROXY__PORT          = "49983"
        HUTCH_PROXY__DOMAIN        = var.domain
        HUTCH_CLUSTER__API_URL     = local.api_url
      }

      template {
        data        = "{{ with nomadVar \"${local.secrets}\" }}{{ .cluster_secret }}{{ end }}"
        destination = "secrets/cluster-secret"
        perms       = "0400"
        uid         = local.uid
        gid         = local.uid
      }

      template {
        data        = "{{ with nomadVar \"${local.secrets}\" }}HUTCH_CATALOG__URL={{ .catalog_url | toJSON }}{{ end }}"
        destination = "secrets/catalog.env"
        env         = true
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
