output "gwlb_endpoint_ids" {
  description = "GWLB endpoints by zone (vpce-...): the gwlb_endpoint_id in weir's EVE records."
  value       = { for az, e in aws_vpc_endpoint.gwlb : az => e.id }
}

output "autoscaling_group_name" {
  description = "For `aws autoscaling start-instance-refresh` on upgrades."
  value       = module.weir.autoscaling_group_name
}

output "endpoint_service_name" {
  description = "For GWLB endpoints in other VPCs and accounts."
  value       = module.weir.endpoint_service_name
}
