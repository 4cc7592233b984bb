variable "region" {
  description = "Region of both VPCs (a GWLB endpoint must be in the GWLB's region)."
  type        = string
  default     = "us-east-1"
}

variable "availability_zones" {
  description = "Two zones, used by both VPCs in the same order (a GWLB endpoint sends to the GWLB's targets in its own zone unless cross-zone is on)."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]

  validation {
    condition     = length(var.availability_zones) == 2
    error_message = "availability_zones: exactly two, as the subnet CIDRs below."
  }
}

variable "weir_ami_id" {
  description = "The AMI from deploy/packer (arm64 for the default c7gn instance type)."
  type        = string
}

variable "instance_type" {
  description = "weir instance type (ENA; arm64 AMI for Graviton types)."
  type        = string
  default     = "c7gn.large"
}

variable "cluster_key" {
  description = "weir's cluster key file contents: `head -c 32 /dev/urandom | base64`. Stored as a SecureString parameter; never in the AMI."
  type        = string
  sensitive   = true
}

variable "prometheus_cidrs" {
  description = "Where Prometheus scrapes weir's metrics from."
  type        = list(string)
  default     = ["10.100.0.0/16"]
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = { Project = "weir-inspection-example" }
}
