variable "name" {
  description = "Name prefix of every resource (ELB names are at most 32 characters with the suffixes)."
  type        = string
  default     = "weir-mirror"

  validation {
    condition     = can(regex("^[a-zA-Z0-9-]{1,20}$", var.name))
    error_message = "name: 1-20 letters, digits or hyphens."
  }
}

variable "gateway_load_balancer_endpoint_id" {
  description = "An existing GWLB endpoint (vpce-...) whose GWLB has weir as target, to use as the mirror target instead of an NLB. List it in weir's mirror.gwlb_endpoints. Empty: create the NLB."
  type        = string
  default     = ""
}

variable "vpc_id" {
  description = "The VPC of the NLB and the weir instances (NLB mode)."
  type        = string
  default     = ""
}

variable "subnet_ids" {
  description = "Subnets of the internal NLB, one per Availability Zone of the weir instances (NLB mode)."
  type        = list(string)
  default     = []
}

variable "autoscaling_group_name" {
  description = "The weir Auto Scaling group to attach to the NLB's target group (NLB mode). Empty: use instance_ids."
  type        = string
  default     = ""
}

variable "instance_ids" {
  description = "weir instances to register in the NLB's target group, when there is no Auto Scaling group."
  type        = list(string)
  default     = []
}

variable "health_port" {
  description = "weir's health.listen port: the NLB checks GET /healthz there."
  type        = number
  default     = 8080
}

variable "filter" {
  description = <<-EOT
    The mirror filter, in the shape weir reads (one element of TrafficMirrorFilters
    in `aws ec2 describe-traffic-mirror-filters` output), so the same file feeds
    both: jsondecode(file("filters/web.json")).TrafficMirrorFilters[0]. Extra keys
    (ids, tags) are ignored. A rule's direction is that of the list it is in.
    Rules are first-match by RuleNumber; no match is not mirrored.
  EOT
  type = object({
    Description     = optional(string, "weir mirror filter")
    NetworkServices = optional(list(string), [])
    IngressFilterRules = optional(list(object({
      RuleNumber           = number
      RuleAction           = string
      Protocol             = optional(number)
      SourceCidrBlock      = string
      DestinationCidrBlock = string
      SourcePortRange      = optional(object({ FromPort = number, ToPort = number }))
      DestinationPortRange = optional(object({ FromPort = number, ToPort = number }))
      Description          = optional(string)
    })), [])
    EgressFilterRules = optional(list(object({
      RuleNumber           = number
      RuleAction           = string
      Protocol             = optional(number)
      SourceCidrBlock      = string
      DestinationCidrBlock = string
      SourcePortRange      = optional(object({ FromPort = number, ToPort = number }))
      DestinationPortRange = optional(object({ FromPort = number, ToPort = number }))
      Description          = optional(string)
    })), [])
  })

  validation {
    condition = alltrue([
      for r in concat(var.filter.IngressFilterRules, var.filter.EgressFilterRules) :
      contains(["accept", "reject"], r.RuleAction)
    ])
    error_message = "filter: RuleAction is accept or reject."
  }
}

variable "sessions" {
  description = "Mirror sessions: the ENI to mirror, the VNI (weir's mirror.sessions[].vni picks the session by it; give each its own), the session number (priority, 1-32766, lowest first) and optionally packet_length (bytes kept after the VXLAN header)."
  type = list(object({
    network_interface_id = string
    virtual_network_id   = number
    session_number       = optional(number, 1)
    packet_length        = optional(number)
    description          = optional(string)
  }))
  default = []
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
