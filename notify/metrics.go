package notify

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/timebox-dev/timebox"
)

// metrics are the outbox's Prometheus metrics: attempts by outcome (counted as they happen)
// and the undelivered messages of each channel (counted in the store at each scrape).
type metrics struct {
	attempts *prometheus.CounterVec
	queue    *prometheus.Desc
	o        *Outbox
}

// Register registers the outbox's metrics with reg: timebox_notify_attempts_total{channel,
// outcome="sent|retry|failed"} and timebox_notify_undelivered{channel,status="pending|
// sending|failed"} (failed: the dead-letter list).
func (o *Outbox) Register(reg prometheus.Registerer) {
	m := &metrics{o: o,
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "timebox_notify_attempts_total",
			Help: "Notification delivery attempts, by channel and outcome (sent, retry: failed and tried again later, failed: given up, on the dead-letter list).",
		}, []string{"channel", "outcome"}),
		queue: prometheus.NewDesc("timebox_notify_undelivered",
			"Notifications not delivered, by channel and status (pending, sending, failed: the dead-letter list).", []string{"channel", "status"}, nil),
	}
	reg.MustRegister(m.attempts, m)
	o.metrics = m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.queue }

// Collect implements prometheus.Collector: every channel and status, 0 when it has none.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var counts map[string]map[timebox.DeliveryStatus]int
	err := m.o.store.View(ctx, func(tx timebox.Tx) (err error) {
		counts, err = tx.CountUndelivered()
		return err
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.queue, err)
		return
	}
	for _, c := range m.o.channels {
		for _, st := range []timebox.DeliveryStatus{timebox.DeliveryPending, timebox.DeliverySending, timebox.DeliveryFailed} {
			ch <- prometheus.MustNewConstMetric(m.queue, prometheus.GaugeValue, float64(counts[c.Name][st]), c.Name, string(st))
		}
	}
}

// count records one attempt's outcome.
func (m *metrics) count(channel string, status timebox.DeliveryStatus) {
	if m == nil {
		return
	}
	outcome := "retry"
	switch status {
	case timebox.DeliverySent:
		outcome = "sent"
	case timebox.DeliveryFailed:
		outcome = "failed"
	}
	m.attempts.WithLabelValues(channel, outcome).Inc()
}
