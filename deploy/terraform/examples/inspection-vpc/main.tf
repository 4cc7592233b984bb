# North-south inspection with weir behind a Gateway Load Balancer.
#
#   internet ── IGW ──(edge route table)──> GWLB endpoint (app VPC, per AZ)
#                                               │ GENEVE over AWS PrivateLink
#                                               ▼
#                                 GWLB ──> weir ASG (inspection VPC, 2 AZs)
#                                               │ back the same way
#                                               ▼
#                                 GWLB endpoint ──> app subnet (same AZ)
#
# Inbound: the IGW's edge route table sends traffic for each app subnet to the
# GWLB endpoint of that subnet's zone; the endpoint hands it to the GWLB, weir
# inspects it and returns it, and the endpoint delivers it to the app subnet.
# Outbound: the app subnet's default route is its zone's endpoint; after weir,
# the endpoint subnet's default route is the IGW. Both directions of a flow
# cross the same endpoint, so weir sees both (symmetric by construction).
#
#   terraform init && terraform apply -var weir_ami_id=ami-... -var cluster_key=...

locals {
  inspection_cidr         = "10.100.0.0/16"
  inspection_subnet_cidrs = ["10.100.0.0/24", "10.100.1.0/24"] # GWLB and weir, per AZ
  app_cidr                = "10.0.0.0/16"
  app_subnet_cidrs        = ["10.0.1.0/24", "10.0.2.0/24"]   # the workloads, per AZ
  endpoint_subnet_cidrs   = ["10.0.10.0/28", "10.0.11.0/28"] # the GWLB endpoints, per AZ
  zones                   = { for i, az in var.availability_zones : az => i }
}

data "aws_caller_identity" "current" {}

# ===========================================================================
# Inspection VPC: the GWLB and the weir fleet, in private subnets. The
# instances reach the EC2, Auto Scaling and SSM APIs through interface
# endpoints, so this VPC needs no internet access at all.

resource "aws_vpc" "inspection" {
  cidr_block           = local.inspection_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = "inspection" })
}

resource "aws_subnet" "inspection" {
  for_each          = local.zones
  vpc_id            = aws_vpc.inspection.id
  availability_zone = each.key
  cidr_block        = local.inspection_subnet_cidrs[each.value]
  tags              = merge(var.tags, { Name = "inspection-${each.key}" })
}

resource "aws_route_table" "inspection" {
  vpc_id = aws_vpc.inspection.id
  tags   = merge(var.tags, { Name = "inspection" })
}

resource "aws_route_table_association" "inspection" {
  for_each       = aws_subnet.inspection
  subnet_id      = each.value.id
  route_table_id = aws_route_table.inspection.id
}

resource "aws_security_group" "api_endpoints" {
  name_prefix = "weir-api-endpoints-"
  description = "HTTPS to the AWS API interface endpoints from the inspection VPC"
  vpc_id      = aws_vpc.inspection.id

  ingress {
    description = "HTTPS from the inspection VPC"
    protocol    = "tcp"
    from_port   = 443
    to_port     = 443
    cidr_blocks = [local.inspection_cidr]
  }

  tags = var.tags
}

# What weir and its user data call: ec2 (discovery), autoscaling (lifecycle
# hook), ssm (config and cluster key).
resource "aws_vpc_endpoint" "api" {
  for_each            = toset(["ec2", "autoscaling", "ssm"])
  vpc_id              = aws_vpc.inspection.id
  vpc_endpoint_type   = "Interface"
  service_name        = "com.amazonaws.${var.region}.${each.key}"
  subnet_ids          = [for s in aws_subnet.inspection : s.id]
  security_group_ids  = [aws_security_group.api_endpoints.id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "inspection-${each.key}" })
}

# weir's configuration and cluster key, read by the instances at boot.
resource "aws_ssm_parameter" "weir_config" {
  name  = "/weir/inspection/weir.yaml"
  type  = "String"
  tier  = "Standard"
  value = file("${path.module}/../../../config/weir.yaml")
  tags  = var.tags
}

resource "aws_ssm_parameter" "cluster_key" {
  name  = "/weir/inspection/cluster.key"
  type  = "SecureString"
  value = var.cluster_key
  tags  = var.tags
}

module "weir" {
  source = "../../modules/gwlb-appliance"

  name              = "weir"
  vpc_id            = aws_vpc.inspection.id
  subnet_ids        = [for s in aws_subnet.inspection : s.id]
  gwlb_subnet_cidrs = local.inspection_subnet_cidrs
  ami_id            = var.weir_ami_id
  instance_type     = var.instance_type
  min_size          = 2
  max_size          = 4

  # Equal to health.drain_delay (300s) in deploy/config/weir.yaml.
  deregistration_delay = 300
  # Longer than the drain delay: weir completes the lifecycle action itself.
  lifecycle_heartbeat_timeout = 420

  config_ssm_parameter      = aws_ssm_parameter.weir_config.name
  cluster_key_ssm_parameter = aws_ssm_parameter.cluster_key.name
  metrics_cidrs             = var.prometheus_cidrs

  # Endpoints in this account only; add other accounts' root ARNs to share.
  endpoint_allowed_principals = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]

  tags = var.tags
}

# ===========================================================================
# Application VPC: public workloads whose internet traffic weir inspects.

resource "aws_vpc" "app" {
  cidr_block           = local.app_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = "app" })
}

resource "aws_internet_gateway" "app" {
  vpc_id = aws_vpc.app.id
  tags   = merge(var.tags, { Name = "app" })
}

resource "aws_subnet" "app" {
  for_each                = local.zones
  vpc_id                  = aws_vpc.app.id
  availability_zone       = each.key
  cidr_block              = local.app_subnet_cidrs[each.value]
  map_public_ip_on_launch = true
  tags                    = merge(var.tags, { Name = "app-${each.key}" })
}

resource "aws_subnet" "endpoint" {
  for_each          = local.zones
  vpc_id            = aws_vpc.app.id
  availability_zone = each.key
  cidr_block        = local.endpoint_subnet_cidrs[each.value]
  tags              = merge(var.tags, { Name = "gwlb-endpoint-${each.key}" })
}

# One GWLB endpoint per zone, each in its own small subnet.
resource "aws_vpc_endpoint" "gwlb" {
  for_each          = aws_subnet.endpoint
  vpc_id            = aws_vpc.app.id
  vpc_endpoint_type = "GatewayLoadBalancer"
  service_name      = module.weir.endpoint_service_name
  subnet_ids        = [each.value.id]
  tags              = merge(var.tags, { Name = "weir-${each.key}" })
}

# Endpoint subnets: after inspection, traffic leaves by the IGW.
resource "aws_route_table" "endpoint" {
  vpc_id = aws_vpc.app.id
  tags   = merge(var.tags, { Name = "gwlb-endpoint" })
}

resource "aws_route" "endpoint_default" {
  route_table_id         = aws_route_table.endpoint.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.app.id
}

resource "aws_route_table_association" "endpoint" {
  for_each       = aws_subnet.endpoint
  subnet_id      = each.value.id
  route_table_id = aws_route_table.endpoint.id
}

# App subnets: everything leaving the VPC goes through the zone's endpoint
# first (the VPC's own CIDR stays local).
resource "aws_route_table" "app" {
  for_each = aws_subnet.app
  vpc_id   = aws_vpc.app.id
  tags     = merge(var.tags, { Name = "app-${each.key}" })
}

resource "aws_route" "app_default" {
  for_each               = aws_route_table.app
  route_table_id         = each.value.id
  destination_cidr_block = "0.0.0.0/0"
  vpc_endpoint_id        = aws_vpc_endpoint.gwlb[each.key].id
}

resource "aws_route_table_association" "app" {
  for_each       = aws_subnet.app
  subnet_id      = each.value.id
  route_table_id = aws_route_table.app[each.key].id
}

# The IGW's edge route table: traffic from the internet to an app subnet goes to
# that zone's endpoint first, instead of straight to the subnet.
resource "aws_route_table" "ingress" {
  vpc_id = aws_vpc.app.id
  tags   = merge(var.tags, { Name = "igw-ingress" })
}

resource "aws_route" "ingress_to_app" {
  for_each               = aws_subnet.app
  route_table_id         = aws_route_table.ingress.id
  destination_cidr_block = each.value.cidr_block
  vpc_endpoint_id        = aws_vpc_endpoint.gwlb[each.key].id
}

resource "aws_route_table_association" "ingress" {
  gateway_id     = aws_internet_gateway.app.id
  route_table_id = aws_route_table.ingress.id
}
