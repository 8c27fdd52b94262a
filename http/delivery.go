package http

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/timebox-dev/timebox"
)

// deliveryParams are the query parameters of GET /api/v1/notify/deliveries.
var deliveryParams = []string{"status", "channel", "request", "limit"}

// deliveryList is the body of GET /api/v1/notify/deliveries.
type deliveryList struct {
	Deliveries []*timebox.Delivery `json:"deliveries"`
}

// handleDeliveries lists the notification outbox (admins and auditors), newest first:
// ?status=failed is the dead-letter list.
func (s *Server) handleDeliveries(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	q, err := parseQuery(r, deliveryParams...)
	if err != nil {
		return err
	}
	var f timebox.DeliveryFilter
	status, err := q.string("status")
	if err != nil {
		return err
	}
	f.Status = timebox.DeliveryStatus(status) // checked by the Service, after who may ask
	for name, dst := range map[string]*string{"channel": &f.Channel, "request": &f.RequestID} {
		if *dst, err = q.string(name); err != nil {
			return err
		}
	}
	if f.Limit, err = q.limit(); err != nil {
		return err
	}
	ds, err := s.Service.Deliveries(r.Context(), u.Name, f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, deliveryList{Deliveries: nonNil(ds)})
	return nil
}

// handleRetryDelivery puts a failed delivery back in the outbox (admins).
func (s *Server) handleRetryDelivery(w http.ResponseWriter, r *http.Request, u *timebox.User) error {
	id, err := ParseDeliveryID(r.PathValue("id"))
	if err != nil {
		return err
	}
	d, err := s.Service.RetryDelivery(r.Context(), u.Name, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// ParseDeliveryID reads a notification's ID (a positive integer) from a path or a command
// line: EINVALID otherwise.
func ParseDeliveryID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		if err := checkParam("the notification id", s); err != nil {
			return 0, err
		}
		return 0, timebox.Errorf(timebox.EINVALID, "the notification id %s is not a positive integer (see timebox notify failed)", quote(s))
	}
	return id, nil
}

// Deliveries lists the notification outbox that f selects, newest first (admins and
// auditors): f.Status = timebox.DeliveryFailed is the dead-letter list.
func (c *Client) Deliveries(ctx context.Context, f timebox.DeliveryFilter) ([]*timebox.Delivery, error) {
	v := url.Values{}
	setString(v, "status", string(f.Status))
	setString(v, "channel", f.Channel)
	setString(v, "request", f.RequestID)
	setInt(v, "limit", f.Limit)
	var out deliveryList
	if err := c.do(ctx, "GET", "/api/v1/notify/deliveries", v, nil, &out); err != nil {
		return nil, err
	}
	return out.Deliveries, nil
}

// RetryDelivery puts the failed delivery with the given ID back in the outbox, due now
// (admins): ECONFLICT when it has not failed.
func (c *Client) RetryDelivery(ctx context.Context, id int64) (*timebox.Delivery, error) {
	var out timebox.Delivery
	path := "/api/v1/notify/deliveries/" + strconv.FormatInt(id, 10) + "/retry"
	if err := c.do(ctx, "POST", path, nil, struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
