output "traffic_mirror_target_id" {
  description = "The mirror target (for more sessions made elsewhere)."
  value       = aws_ec2_traffic_mirror_target.weir.id
}

output "traffic_mirror_filter_id" {
  description = "The mirror filter; weir's mirror.sessions[].filter_id when its filter file holds several."
  value       = aws_ec2_traffic_mirror_filter.weir.id
}

output "nlb_arn" {
  description = "The internal NLB, or null in GWLB-endpoint mode."
  value       = local.use_nlb ? aws_lb.mirror[0].arn : null
}

output "sessions" {
  description = "Session ids by ENI and session number, with their VNIs: the vni of each weir mirror.sessions entry."
  value = {
    for k, s in aws_ec2_traffic_mirror_session.weir : k => {
      id                 = s.id
      virtual_network_id = s.virtual_network_id
    }
  }
}
