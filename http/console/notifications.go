package console

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/timebox-dev/timebox"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// Sizes of the notification lists.
const (
	notificationsShown  = 100 // each list of the Notifications page
	requestDeliveries   = 50  // a request's page
	maxNotifyFilterText = 200
)

// notificationRoutes are the Notifications page (admins): the dead-letter list, each failed
// delivery with a Retry button, then the latest deliveries, filtered by status and channel.
func (s *Server) notificationRoutes() []route {
	return []route{
		{Method: "GET", Path: "/notifications", h: s.handleNotifications},
		{Method: "POST", Path: "/notifications/{id}/retry", h: s.handleNotificationRetry},
	}
}

// notificationsPage is what the Notifications page shows.
type notificationsPage struct {
	// Failed is the dead-letter list, newest first; FailedMore says it has more than shown.
	Failed     []*timebox.Delivery
	FailedMore bool
	// Recent are the latest deliveries that the filter selects; RecentMore as FailedMore.
	Recent     []*timebox.Delivery
	RecentMore bool
	// Status and Channel are the filter; Errors says what is wrong with it, by field.
	Status, Channel string
	Errors          map[string]string
	Statuses        []timebox.DeliveryStatus
	// Channels are the channels of the deliveries shown, for the filter's suggestions.
	Channels []string
	// Notice says what the last retry did; Error why a retry was refused.
	Notice, Error string
	// Configured says the server has notification channels.
	Configured bool
}

// deliveryArgs is what the "delivery-table" partial gets: the page's view, the rows, the
// table's label, and whether to show the request column and the Retry buttons.
type deliveryArgs struct {
	V              *view
	Rows           []*timebox.Delivery
	Label          string
	Request, Retry bool
}

func init() {
	funcs["deliveryArgs"] = func(v *view, rows []*timebox.Delivery, label string, request, retry bool) deliveryArgs {
		return deliveryArgs{V: v, Rows: rows, Label: label, Request: request, Retry: retry}
	}
}

// mayNotify refuses those who may not see the Notifications page.
func (s *Server) mayNotify(c *call) error {
	if !s.Service.Catalog.IsAdmin(c.User.Name) {
		return timebox.Errorf(timebox.EFORBIDDEN, "only admins may see the notifications page")
	}
	return nil
}

func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := s.mayNotify(c); err != nil {
		return err
	}
	p := &notificationsPage{}
	if id, err := strconv.ParseInt(r.URL.Query().Get("retried"), 10, 64); err == nil && id > 0 {
		p.Notice = "Notification " + strconv.FormatInt(id, 10) + " was put back in the outbox: it is due now, its attempts reset."
	}
	return s.showNotifications(w, r, c, http.StatusOK, p)
}

// showNotifications renders the Notifications page with status, the filter read from r's
// query.
func (s *Server) showNotifications(w http.ResponseWriter, r *http.Request, c *call, status int, p *notificationsPage) error {
	ctx, me := r.Context(), c.User.Name
	q := r.URL.Query()
	p.Errors, p.Statuses, p.Configured = map[string]string{}, timebox.DeliveryStatuses, len(s.NotifyChannels) > 0
	p.Status, p.Channel = strings.TrimSpace(q.Get("status")), strings.TrimSpace(q.Get("channel"))
	f := timebox.DeliveryFilter{Limit: notificationsShown + 1}
	var err error
	if f.Status, err = timebox.ParseDeliveryStatus(p.Status); err != nil {
		p.Errors["status"] = timebox.ErrorMessage(err)
	}
	if len(p.Channel) > maxNotifyFilterText {
		p.Errors["channel"] = "is too long"
	} else if !utf8.ValidString(p.Channel) || strings.ContainsFunc(p.Channel, unicode.IsControl) {
		p.Errors["channel"] = "is not a channel name (it has control characters or is not UTF-8)"
	} else {
		f.Channel = p.Channel
	}
	if p.Failed, err = s.Service.Deliveries(ctx, me, timebox.DeliveryFilter{Status: timebox.DeliveryFailed, Limit: notificationsShown + 1}); err != nil {
		return err
	}
	p.Failed, p.FailedMore = cut(p.Failed, notificationsShown)
	if len(p.Errors) == 0 {
		if p.Recent, err = s.Service.Deliveries(ctx, me, f); err != nil {
			return err
		}
		p.Recent, p.RecentMore = cut(p.Recent, notificationsShown)
	}
	for _, d := range slices.Concat(p.Failed, p.Recent) {
		if !slices.Contains(p.Channels, d.Channel) {
			p.Channels = append(p.Channels, d.Channel)
		}
	}
	slices.Sort(p.Channels)
	s.render(w, r, c, status, "notifications", "Notifications", p)
	return nil
}

// cut keeps the first n of ds and reports whether there were more.
func cut(ds []*timebox.Delivery, n int) ([]*timebox.Delivery, bool) {
	if len(ds) > n {
		return ds[:n], true
	}
	return ds, false
}

// handleNotificationRetry puts a failed delivery back in the outbox and returns to the
// page, which says so; a delivery that is no longer failed (sent meanwhile, or retried by
// another admin) is said on the page, with 409.
func (s *Server) handleNotificationRetry(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := s.mayNotify(c); err != nil {
		return err
	}
	raw := r.PathValue("id")
	id, err := tbhttp.ParseDeliveryID(raw)
	if err != nil {
		return timebox.Errorf(timebox.ENOTFOUND, "there is no notification %s", timebox.Clip(raw))
	}
	d, err := s.Service.RetryDelivery(r.Context(), c.User.Name, id)
	if timebox.ErrorCode(err) == timebox.ECONFLICT {
		return s.showNotifications(w, r, c, http.StatusConflict, &notificationsPage{Error: timebox.ErrorMessage(err)})
	} else if err != nil {
		return err
	}
	v := url.Values{"retried": {strconv.FormatInt(d.ID, 10)}}
	http.Redirect(w, r, "/notifications?"+v.Encode()+"#dead-letters", http.StatusSeeOther)
	return nil
}
