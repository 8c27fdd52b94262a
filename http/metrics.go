package http

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/timebox-dev/timebox"
)

// probeTimeout bounds the store query of a health check or a metrics scrape.
const probeTimeout = 5 * time.Second

// requestCollector exports the number of requests in each state, counted in the store at
// scrape time, so that every server replica reports the same figures.
type requestCollector struct {
	svc  *timebox.Service
	desc *prometheus.Desc
}

func newRequestCollector(svc *timebox.Service) *requestCollector {
	return &requestCollector{svc: svc, desc: prometheus.NewDesc(
		"timebox_requests", "Requests in each state, as stored.", []string{"state"}, nil)}
}

// Describe sends the collector's one descriptor.
func (c *requestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect counts the requests in the store: every state, 0 when it has none.
func (c *requestCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	var counts map[timebox.State]int
	err := c.svc.Store.View(ctx, func(tx timebox.Tx) (err error) {
		counts, err = tx.CountRequests()
		return err
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, st := range timebox.States {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), string(st))
	}
}

// health is the body of GET /healthz.
type health struct {
	Status string `json:"status"`
}

// handleHealth answers 200 when the store can be read and 503 otherwise.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request, _ *timebox.User) error {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	err := s.Service.Store.View(ctx, func(tx timebox.Tx) error {
		_, _, err := tx.AuditHead()
		return err
	})
	if err != nil {
		s.logger().Warn("http: health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, health{Status: "unavailable"})
		return nil
	}
	writeJSON(w, http.StatusOK, health{Status: "ok"})
	return nil
}
