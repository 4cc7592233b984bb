variable "name" {
  description = "Name prefix of every resource (load balancer and target group names: at most 32 characters with the suffixes, so keep it short)."
  type        = string
  default     = "weir"

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,20}$", var.name))
    error_message = "name: 1-20 letters, digits or hyphens (ELB names are at most 32 characters)."
  }
}

variable "vpc_id" {
  description = "The inspection VPC."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the GWLB and the instances, one per Availability Zone (at least two for availability)."
  type        = list(string)
}

variable "gwlb_subnet_cidrs" {
  description = "CIDRs of subnet_ids: GENEVE (6081/udp) and the health checks come from the GWLB's addresses in them. Also weir's gwlb.allowed_sources."
  type        = list(string)
}

variable "ami_id" {
  description = "The weir AMI built by deploy/packer/weir.pkr.hcl (its architecture must match instance_type)."
  type        = string
}

variable "instance_type" {
  description = "An ENA instance type; c6gn/c7gn (arm64) or c6in/c7i (x86_64) for the highest packet rates."
  type        = string
  default     = "c7gn.large"
}

variable "min_size" {
  description = "Fewest instances; keep one per AZ at least, since a GWLB sends a zone's flows to that zone's targets unless cross-zone load balancing is on."
  type        = number
  default     = 2
}

variable "max_size" {
  description = "Most instances. Full flow-state replication suits fleets of up to about 16 (README \"The fleet\")."
  type        = number
  default     = 4
}

variable "desired_capacity" {
  description = "Instances to start with; null lets scaling policies decide (between min_size and max_size)."
  type        = number
  default     = null
}

variable "health_port" {
  description = "weir's health.listen port: the target group checks GET /healthz there (200 serving, 503 draining or dataplane down)."
  type        = number
  default     = 8080
}

variable "metrics_port" {
  description = "weir's metrics.listen port (Prometheus)."
  type        = number
  default     = 9090
}

variable "metrics_cidrs" {
  description = "Who may scrape metrics_port (your Prometheus). Empty: nobody."
  type        = list(string)
  default     = []
}

variable "cluster_port" {
  description = "weir's cluster.bind port (memberlist gossip and flow sync, TCP and UDP)."
  type        = number
  default     = 7946
}

variable "deregistration_delay" {
  description = "Seconds the GWLB keeps sending a deregistered target its existing flows. Keep it >= weir's health.drain_delay, so weir forwards for as long as flows may still arrive."
  type        = number
  default     = 300

  validation {
    condition     = var.deregistration_delay >= 0 && var.deregistration_delay <= 3600
    error_message = "deregistration_delay: 0-3600 seconds (AWS's range)."
  }
}

variable "stickiness" {
  description = "GWLB flow stickiness: 5-tuple (default, stickiness off), source_ip_dest_ip_proto (3-tuple) or source_ip_dest_ip (2-tuple)."
  type        = string
  default     = "5-tuple"

  validation {
    condition     = contains(["5-tuple", "source_ip_dest_ip_proto", "source_ip_dest_ip"], var.stickiness)
    error_message = "stickiness: 5-tuple, source_ip_dest_ip_proto or source_ip_dest_ip."
  }
}

variable "cross_zone_load_balancing" {
  description = "Let the GWLB send a zone's flows to targets in other zones (inter-AZ data transfer is charged)."
  type        = bool
  default     = false
}

variable "health_check" {
  description = "Target group health check timing. A draining node answers 503, so it is out after interval x unhealthy_threshold seconds."
  type = object({
    interval            = number
    timeout             = number
    healthy_threshold   = number
    unhealthy_threshold = number
  })
  default = {
    interval            = 10
    timeout             = 5
    healthy_threshold   = 3
    unhealthy_threshold = 2
  }
}

variable "lifecycle_heartbeat_timeout" {
  description = "Seconds a terminating instance stays in Terminating:Wait for weir to drain before the ASG goes on (must exceed health.drain_delay; weir completes the action itself when done)."
  type        = number
  default     = 420
}

variable "endpoint_acceptance_required" {
  description = "Whether each GWLB endpoint connection to the endpoint service must be accepted by hand."
  type        = bool
  default     = false
}

variable "endpoint_allowed_principals" {
  description = "ARNs of the principals (accounts, roles) allowed to create GWLB endpoints to the service, e.g. arn:aws:iam::123456789012:root."
  type        = list(string)
  default     = []
}

variable "weir_config" {
  description = "The contents of /etc/weir/weir.yaml (e.g. file(\"deploy/config/weir.yaml\")). Ignored when config_ssm_parameter is set; one of the two is required (the AMI's example config is the inspection-vpc example's, with its allowed_sources)."
  type        = string
  default     = ""
}

variable "config_ssm_parameter" {
  description = "Name of an SSM parameter (String or SecureString) holding weir.yaml; when set, instances fetch it at boot instead of using weir_config, and the role may read exactly that parameter."
  type        = string
  default     = ""
}

variable "cluster_key_ssm_parameter" {
  description = "Name of a SecureString SSM parameter holding the cluster key file (one base64 key a line), written to /etc/weir/cluster.key at boot. Empty: the config must not need one (standalone or cluster.insecure)."
  type        = string
  default     = ""
}

variable "discovery_tag_key" {
  description = "Tag every instance carries so that weir's EC2 discovery finds its peers (cluster.discover tag_key)."
  type        = string
  default     = "weir:fleet"
}

variable "discovery_tag_value" {
  description = "Value of discovery_tag_key (cluster.discover tag_value); defaults to name."
  type        = string
  default     = ""
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
