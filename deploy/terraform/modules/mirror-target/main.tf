# weir as a Traffic Mirroring target: mirrored VXLAN (UDP 4789) reaches the weir
# instances through an internal NLB with a UDP listener, or through an existing
# GWLB endpoint (then inside GENEVE), with a filter in weir's own rule structure
# and sessions for the given ENIs.

locals {
  use_nlb = var.gateway_load_balancer_endpoint_id == ""

  # Both rule lists, keyed by direction and number (unique per direction in AWS).
  filter_rules = merge(
    { for r in var.filter.IngressFilterRules : "ingress-${r.RuleNumber}" => merge(r, { TrafficDirection = "ingress" }) },
    { for r in var.filter.EgressFilterRules : "egress-${r.RuleNumber}" => merge(r, { TrafficDirection = "egress" }) },
  )
}

# ---------------------------------------------------------------------------
# The NLB (when no GWLB endpoint is given). For UDP to instance targets the NLB
# keeps the mirrored ENI's address as the source, so weir's security group must
# allow UDP 4789 from the mirrored subnets (and weir's mirror.allowed_sources
# may list them).

resource "aws_lb" "mirror" {
  count              = local.use_nlb ? 1 : 0
  name               = "${var.name}-nlb"
  load_balancer_type = "network"
  internal           = true
  subnets            = var.subnet_ids
  # A mirror session's packets are hashed to one target per flow; across zones
  # so that one zone's weir can take another's mirrored ENIs.
  enable_cross_zone_load_balancing = true
  tags                             = var.tags
}

resource "aws_lb_target_group" "vxlan" {
  count       = local.use_nlb ? 1 : 0
  name        = "${var.name}-vxlan"
  vpc_id      = var.vpc_id
  target_type = "instance"
  protocol    = "UDP"
  port        = 4789

  health_check {
    enabled  = true
    protocol = "HTTP"
    port     = tostring(var.health_port)
    path     = "/healthz"
    matcher  = "200-399"
  }

  tags = var.tags
}

resource "aws_lb_listener" "vxlan" {
  count             = local.use_nlb ? 1 : 0
  load_balancer_arn = aws_lb.mirror[0].arn
  protocol          = "UDP"
  port              = 4789

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.vxlan[0].arn
  }

  tags = var.tags
}

resource "aws_autoscaling_attachment" "vxlan" {
  count                  = local.use_nlb && var.autoscaling_group_name != "" ? 1 : 0
  autoscaling_group_name = var.autoscaling_group_name
  lb_target_group_arn    = aws_lb_target_group.vxlan[0].arn
}

resource "aws_lb_target_group_attachment" "vxlan" {
  for_each         = local.use_nlb && var.autoscaling_group_name == "" ? toset(var.instance_ids) : toset([])
  target_group_arn = aws_lb_target_group.vxlan[0].arn
  target_id        = each.value
  port             = 4789
}

# ---------------------------------------------------------------------------
# Target, filter, sessions

resource "aws_ec2_traffic_mirror_target" "weir" {
  description                       = "weir (${local.use_nlb ? "NLB UDP 4789" : "GWLB endpoint"})"
  network_load_balancer_arn         = local.use_nlb ? aws_lb.mirror[0].arn : null
  gateway_load_balancer_endpoint_id = local.use_nlb ? null : var.gateway_load_balancer_endpoint_id
  tags                              = merge(var.tags, { Name = var.name })

  # The NLB only forwards once the listener is there.
  depends_on = [aws_lb_listener.vxlan]
}

resource "aws_ec2_traffic_mirror_filter" "weir" {
  description      = var.filter.Description
  network_services = var.filter.NetworkServices
  tags             = merge(var.tags, { Name = var.name })
}

resource "aws_ec2_traffic_mirror_filter_rule" "weir" {
  for_each                 = local.filter_rules
  traffic_mirror_filter_id = aws_ec2_traffic_mirror_filter.weir.id
  traffic_direction        = each.value.TrafficDirection
  rule_number              = each.value.RuleNumber
  rule_action              = each.value.RuleAction
  protocol                 = each.value.Protocol
  source_cidr_block        = each.value.SourceCidrBlock
  destination_cidr_block   = each.value.DestinationCidrBlock
  description              = each.value.Description

  # Port ranges only for TCP and UDP (AWS refuses them otherwise).
  dynamic "source_port_range" {
    for_each = each.value.SourcePortRange == null ? [] : [each.value.SourcePortRange]
    content {
      from_port = source_port_range.value.FromPort
      to_port   = source_port_range.value.ToPort
    }
  }

  dynamic "destination_port_range" {
    for_each = each.value.DestinationPortRange == null ? [] : [each.value.DestinationPortRange]
    content {
      from_port = destination_port_range.value.FromPort
      to_port   = destination_port_range.value.ToPort
    }
  }
}

resource "aws_ec2_traffic_mirror_session" "weir" {
  for_each                 = { for s in var.sessions : "${s.network_interface_id}-${s.session_number}" => s }
  network_interface_id     = each.value.network_interface_id
  session_number           = each.value.session_number
  virtual_network_id       = each.value.virtual_network_id
  packet_length            = each.value.packet_length
  description              = each.value.description
  traffic_mirror_filter_id = aws_ec2_traffic_mirror_filter.weir.id
  traffic_mirror_target_id = aws_ec2_traffic_mirror_target.weir.id
  tags                     = merge(var.tags, { Name = "${var.name}-${each.value.virtual_network_id}" })

  # Sessions send to the target only through a filter that has its rules.
  depends_on = [aws_ec2_traffic_mirror_filter_rule.weir]
}
