package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"weir/dataplane/detect"
)

// DetectCollector exports detection's metrics; nil when detection is off.
func (e *Engine) DetectCollector() prometheus.Collector {
	if e.Detect == nil {
		return nil
	}
	return detectCollector{e}
}

type detectCollector struct{ e *Engine }

var (
	alertsDesc = prometheus.NewDesc("weir_alerts_total",
		"Alerts raised, by alert.action: allowed (ids, mirrored traffic) or blocked (dropped inline in ips mode).", []string{"action"}, nil)
	inspectedDesc = prometheus.NewDesc("weir_detect_packets_total", "Packets detection inspected.", nil, nil)
	blockedDesc   = prometheus.NewDesc("weir_detect_blocked_flows_total", "Flows detection blocked inline (ips mode).", nil, nil)
	rulesDesc     = prometheus.NewDesc("weir_detect_rules", "Rules of the rule set in force, by state: loaded or skipped (unsupported).", []string{"state"}, nil)
	reloadsDesc   = prometheus.NewDesc("weir_detect_reloads_total", "Rule-set reloads, by result: ok, or error (the old set kept running).", []string{"result"}, nil)
	timeDesc      = prometheus.NewDesc("weir_detect_packet_seconds", "Detection time per packet, sampled (one batch in 16).", nil, nil)
)

func (c detectCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{alertsDesc, inspectedDesc, blockedDesc, rulesDesc, reloadsDesc, timeDesc} {
		ch <- d
	}
}

func (c detectCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.e.Detect.Totals(c.e.Pipeline)
	ch <- prometheus.MustNewConstMetric(alertsDesc, prometheus.CounterValue, float64(t.AlertsAllowed), "allowed")
	ch <- prometheus.MustNewConstMetric(alertsDesc, prometheus.CounterValue, float64(t.AlertsBlocked), "blocked")
	ch <- prometheus.MustNewConstMetric(inspectedDesc, prometheus.CounterValue, float64(t.Inspected))
	ch <- prometheus.MustNewConstMetric(blockedDesc, prometheus.CounterValue, float64(t.BlockedFlows))
	info := c.e.DetectInfo()
	ch <- prometheus.MustNewConstMetric(rulesDesc, prometheus.GaugeValue, float64(info.Rules), "loaded")
	ch <- prometheus.MustNewConstMetric(rulesDesc, prometheus.GaugeValue, float64(len(info.Skipped)), "skipped")
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(c.e.detectReloads[0].Load()), "ok")
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(c.e.detectReloads[1].Load()), "error")
	buckets := map[float64]uint64{}
	var cum uint64
	for i, le := range detect.TimeBuckets {
		cum += t.Buckets[i]
		buckets[le.Seconds()] = cum
	}
	ch <- prometheus.MustNewConstHistogram(timeDesc, t.TimeCount, t.TimeSum.Seconds(), buckets)
}
