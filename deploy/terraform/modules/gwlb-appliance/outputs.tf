output "gwlb_arn" {
  description = "The Gateway Load Balancer."
  value       = aws_lb.gwlb.arn
}

output "target_group_arn" {
  description = "The GENEVE target group of the weir instances."
  value       = aws_lb_target_group.weir.arn
}

output "endpoint_service_name" {
  description = "Service name for aws_vpc_endpoint (type GatewayLoadBalancer) in the VPCs to inspect."
  value       = aws_vpc_endpoint_service.gwlb.service_name
}

output "endpoint_service_id" {
  description = "The VPC endpoint service."
  value       = aws_vpc_endpoint_service.gwlb.id
}

output "autoscaling_group_name" {
  description = "The weir Auto Scaling group (instance refresh, scaling policies)."
  value       = aws_autoscaling_group.weir.name
}

output "security_group_id" {
  description = "The weir instances' security group (add rules, e.g. UDP 4789 from mirrored ENIs)."
  value       = aws_security_group.weir.id
}

output "role_name" {
  description = "The instances' IAM role."
  value       = aws_iam_role.weir.name
}
