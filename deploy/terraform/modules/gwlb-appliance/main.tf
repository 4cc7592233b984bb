# weir as the target of a Gateway Load Balancer: the GWLB and its GENEVE target
# group, an endpoint service for GWLB endpoints in other VPCs, and an Auto Scaling
# group of weir instances that drain on scale-in (a termination lifecycle hook)
# and share flow state, so target_failover = rebalance moves flows to nodes that
# already know them.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  discovery_tag_value = var.discovery_tag_value != "" ? var.discovery_tag_value : var.name
  asg_name            = "${var.name}-gwlb"
  # The discovery tag is set on its own below; a same-named key here would clash.
  instance_tags = { for k, v in merge(var.tags, { Name = "${var.name}-weir" }) : k => v if k != var.discovery_tag_key }

  # Built from the name rather than taken from the group, so that the role's
  # policy does not depend on the group and the group can wait for the policy.
  asg_arn = "arn:${data.aws_partition.current.partition}:autoscaling:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${local.asg_name}"

  ssm_parameters = compact([var.config_ssm_parameter, var.cluster_key_ssm_parameter])
  ssm_parameter_arns = [
    for p in local.ssm_parameters :
    "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:parameter/${trimprefix(p, "/")}"
  ]
}

# ---------------------------------------------------------------------------
# Load balancer, target group, listener, endpoint service

resource "aws_lb" "gwlb" {
  name                             = "${var.name}-gwlb"
  load_balancer_type               = "gateway"
  subnets                          = var.subnet_ids
  enable_cross_zone_load_balancing = var.cross_zone_load_balancing
  tags                             = var.tags
}

resource "aws_lb_target_group" "weir" {
  name        = "${var.name}-geneve"
  vpc_id      = var.vpc_id
  target_type = "instance"
  protocol    = "GENEVE"
  port        = 6081

  # Keep >= weir's health.drain_delay: weir keeps forwarding for its drain delay
  # after SIGTERM or the lifecycle hook, while the GWLB still sends it flows.
  deregistration_delay = var.deregistration_delay

  health_check {
    enabled             = true
    protocol            = "HTTP"
    port                = tostring(var.health_port)
    path                = "/healthz"
    matcher             = "200-399"
    interval            = var.health_check.interval
    timeout             = var.health_check.timeout
    healthy_threshold   = var.health_check.healthy_threshold
    unhealthy_threshold = var.health_check.unhealthy_threshold
  }

  # A dead or drained target's flows move to the others, which know them from
  # flow sync. AWS requires both values to be the same.
  target_failover {
    on_deregistration = "rebalance"
    on_unhealthy      = "rebalance"
  }

  # 5-tuple is the GWLB default (stickiness off); 3- and 2-tuple keep more of a
  # client's traffic on one node, at the cost of balance.
  dynamic "stickiness" {
    for_each = var.stickiness == "5-tuple" ? [] : [var.stickiness]
    content {
      enabled = true
      type    = stickiness.value
    }
  }

  tags = var.tags
}

resource "aws_lb_listener" "gwlb" {
  load_balancer_arn = aws_lb.gwlb.arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.weir.arn
  }

  tags = var.tags
}

resource "aws_vpc_endpoint_service" "gwlb" {
  acceptance_required        = var.endpoint_acceptance_required
  allowed_principals         = var.endpoint_allowed_principals
  gateway_load_balancer_arns = [aws_lb.gwlb.arn]
  tags                       = merge(var.tags, { Name = "${var.name}-gwlb" })
}

# ---------------------------------------------------------------------------
# Security group: only what weir listens on, only from whom it must.

resource "aws_security_group" "weir" {
  name_prefix = "${var.name}-"
  description = "weir GWLB targets"
  vpc_id      = var.vpc_id

  ingress {
    description = "GENEVE from the GWLB"
    protocol    = "udp"
    from_port   = 6081
    to_port     = 6081
    cidr_blocks = var.gwlb_subnet_cidrs
  }

  ingress {
    description = "GWLB health checks (GET /healthz)"
    protocol    = "tcp"
    from_port   = var.health_port
    to_port     = var.health_port
    cidr_blocks = var.gwlb_subnet_cidrs
  }

  ingress {
    description = "weir cluster gossip and flow sync (TCP), fleet members only"
    protocol    = "tcp"
    from_port   = var.cluster_port
    to_port     = var.cluster_port
    self        = true
  }

  ingress {
    description = "weir cluster gossip and flow sync (UDP), fleet members only"
    protocol    = "udp"
    from_port   = var.cluster_port
    to_port     = var.cluster_port
    self        = true
  }

  dynamic "ingress" {
    for_each = length(var.metrics_cidrs) > 0 ? [var.metrics_cidrs] : []
    content {
      description = "Prometheus scrapes /metrics"
      protocol    = "tcp"
      from_port   = var.metrics_port
      to_port     = var.metrics_port
      cidr_blocks = ingress.value
    }
  }

  # Replies go back to the GWLB, the fleet talks to itself, and the instances
  # reach the EC2, Auto Scaling and SSM APIs (through NAT or VPC endpoints).
  egress {
    description = "all"
    protocol    = "-1"
    from_port   = 0
    to_port     = 0
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = merge(var.tags, { Name = "${var.name}-weir" })

  lifecycle {
    create_before_destroy = true
  }
}

# ---------------------------------------------------------------------------
# IAM: discovery, the lifecycle hook, the config parameter; nothing else.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "weir" {
  name_prefix        = "${var.name}-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

data "aws_iam_policy_document" "weir" {
  # Peer discovery by tag. EC2 Describe* actions support no resource-level
  # permissions, so "*" is the only possible resource.
  statement {
    sid       = "Discovery"
    actions   = ["ec2:DescribeInstances"]
    resources = ["*"]
  }

  # Drain on scale-in: weir keeps the hook alive while it drains, then lets the
  # termination go on; only for its own group.
  statement {
    sid = "LifecycleDrain"
    # weir completes the hook after its drain; it never extends it (the
    # hook's heartbeat timeout is set longer than the drain instead).
    actions = [
      "autoscaling:CompleteLifecycleAction",
    ]
    resources = [local.asg_arn]
  }

  # The configuration (and cluster key) parameters, when given. A SecureString
  # under the AWS-managed aws/ssm key needs no KMS permission; with your own KMS
  # key, add kms:Decrypt on that key.
  dynamic "statement" {
    for_each = length(local.ssm_parameter_arns) > 0 ? [local.ssm_parameter_arns] : []
    content {
      sid       = "Config"
      actions   = ["ssm:GetParameter"]
      resources = statement.value
    }
  }
}

resource "aws_iam_role_policy" "weir" {
  name   = "weir"
  role   = aws_iam_role.weir.id
  policy = data.aws_iam_policy_document.weir.json
}

resource "aws_iam_instance_profile" "weir" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.weir.name
  tags        = var.tags
}

# ---------------------------------------------------------------------------
# Instances

resource "aws_launch_template" "weir" {
  name_prefix            = "${var.name}-"
  image_id               = var.ami_id
  instance_type          = var.instance_type
  vpc_security_group_ids = [aws_security_group.weir.id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.weir.arn
  }

  # IMDSv2 only. Hop limit 1: weir runs on the host, and no container on it may
  # reach the instance's credentials. (weir reads its group's tag with
  # DescribeInstances, so instance tags stay out of IMDS.)
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  user_data = base64encode(templatefile("${path.module}/user-data.yaml.tftpl", {
    region                    = data.aws_region.current.name
    weir_config               = var.weir_config
    config_ssm_parameter      = var.config_ssm_parameter
    cluster_key_ssm_parameter = var.cluster_key_ssm_parameter
  }))

  # Instance tags come from the group (propagate_at_launch); volumes get these.
  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-weir" })
  }

  tags = var.tags

  lifecycle {
    # Without either, instances would run the AMI's example config (another
    # VPC's allowed_sources) or, written empty, weir's standalone defaults.
    precondition {
      condition     = var.weir_config != "" || var.config_ssm_parameter != ""
      error_message = "Give weir's configuration: weir_config (its text) or config_ssm_parameter (an SSM parameter holding it)."
    }
  }
}

resource "aws_autoscaling_group" "weir" {
  name                      = local.asg_name
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.desired_capacity
  vpc_zone_identifier       = var.subnet_ids
  health_check_type         = "ELB"
  health_check_grace_period = 120

  launch_template {
    id      = aws_launch_template.weir.id
    version = aws_launch_template.weir.latest_version
  }

  # Upgrades replace instances a few at a time: each leaving instance drains
  # (lifecycle hook, health 503, deregistration delay) while its flows move to
  # peers that already know them.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
      instance_warmup        = 60
    }
  }

  # The tag weir's discovery looks for (cluster.discover tag_key/tag_value).
  tag {
    key                 = var.discovery_tag_key
    value               = local.discovery_tag_value
    propagate_at_launch = true
  }

  dynamic "tag" {
    for_each = local.instance_tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  # Instances must be able to complete lifecycle actions from their first boot.
  depends_on = [aws_iam_role_policy.weir]

  # Target groups are attached by aws_autoscaling_attachment (the GWLB's below,
  # and modules/mirror-target's NLB): the provider requires a group named by
  # attachments to ignore its inline lists, or each apply detaches the others.
  lifecycle {
    ignore_changes = [load_balancers, target_group_arns]
  }
}

# The GWLB's target group: every instance of the group is registered.
resource "aws_autoscaling_attachment" "gwlb" {
  autoscaling_group_name = aws_autoscaling_group.weir.name
  lb_target_group_arn    = aws_lb_target_group.weir.arn
}

# Scale-in and instance refresh wait for weir to drain: the instance stays in
# Terminating:Wait until weir completes the action (or the heartbeat timeout,
# which must exceed health.drain_delay, passes; CONTINUE terminates then anyway).
resource "aws_autoscaling_lifecycle_hook" "drain" {
  name                   = "weir-drain"
  autoscaling_group_name = aws_autoscaling_group.weir.name
  lifecycle_transition   = "autoscaling:EC2_INSTANCE_TERMINATING"
  heartbeat_timeout      = var.lifecycle_heartbeat_timeout
  default_result         = "CONTINUE"
}
