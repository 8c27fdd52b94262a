package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/timebox-dev/timebox"
	"github.com/timebox-dev/timebox/engine/postgres"
	tbhttp "github.com/timebox-dev/timebox/http"
)

// activationLatency times approve-returns → first successful login, n times, and the same
// DDL issued directly with pgx → login as the baseline.
// approveCall is how long the approve call itself took (it waits for the activation).
func (h *harness) activationLatency(ctx context.Context, n int) (viaTimebox, approveCall, direct []time.Duration, err error) {
	var ids []string
	for range n {
		r, err := h.requester.CreateRequest(ctx, timebox.RequestInput{Database: "bench", Access: "read-only", Duration: "10m", Reason: "benchmark"})
		if err != nil {
			return nil, nil, nil, err
		}
		sent := time.Now()
		if _, err := h.owner.Approve(ctx, r.ID, timebox.ApproveInput{}); err != nil {
			return nil, nil, nil, err
		}
		start := time.Now()
		approveCall = append(approveCall, start.Sub(sent))
		for {
			c, err := h.requester.Credentials(ctx, r.ID)
			if err == nil {
				if conn, err := login(ctx, c); err == nil {
					viaTimebox = append(viaTimebox, time.Since(start))
					conn.Close(ctx)
					break
				}
			}
			if time.Since(start) > 10*time.Second {
				return nil, nil, nil, fmt.Errorf("no login 10 s after approval of %s: %v", r.ID, err)
			}
			time.Sleep(time.Millisecond)
		}
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		if _, err := h.owner.Revoke(ctx, id, "benchmark done"); err != nil {
			return nil, nil, nil, err
		}
	}
	direct, err = h.directActivation(ctx, n)
	return viaTimebox, approveCall, direct, err
}

// directActivation issues the activation statements with pgx on one admin connection, then
// logs in, n times.
func (h *harness) directActivation(ctx context.Context, n int) ([]time.Duration, error) {
	admin, err := pgx.Connect(ctx, h.pg.URL(h.admin, h.adminPassword, "postgres"))
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	var out []time.Duration
	for i := range n {
		name, password := fmt.Sprintf("direct_act_%d", i), timebox.RandomPassword(32)
		start := time.Now()
		if _, err := admin.Exec(ctx, directGrantSQL(name, password, time.Now().Add(10*time.Minute), h.admin)); err != nil {
			return nil, err
		}
		conn, err := login(ctx, &timebox.Credentials{User: name, Password: password, Host: h.pg.Host, Port: h.pg.Port, Database: benchDB})
		if err != nil {
			return nil, err
		}
		out = append(out, time.Since(start))
		conn.Close(ctx)
		if _, err := admin.Exec(ctx, directRevokeSQL(name, h.admin)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func directGrantSQL(name, password string, until time.Time, admin string) string {
	return directGrantSQLIn(name, password, until, admin, benchDB, benchRole)
}

// directConnectRole is the role that holds CONNECT on db for the logins the baselines
// create, as the engine's connect role does for its own.
func directConnectRole(db string) string { return "direct_connect_" + db }

// directManaged stands for the bookkeeping role in the baselines: a role of its own, so that
// the running server's reconciler does not take the baseline's logins for its orphans.
const directManaged = "direct_managed"

// directConnectSQL creates directConnectRole(db) (and directManaged, when missing); run once
// per database before the baselines.
func directConnectSQL(db string) string {
	r := postgres.QuoteIdent(directConnectRole(db))
	return "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '" + directManaged + "') THEN CREATE ROLE " + directManaged + " NOLOGIN; END IF; END $$;" +
		"CREATE ROLE " + r + " NOLOGIN; GRANT CONNECT ON DATABASE " + postgres.QuoteIdent(db) + " TO " + r
}

// directGrantSQLIn is the engine's activation statements for a role on database db with role
// role: the login with its expiry, the mark (comment and a bookkeeping role), CONNECT through
// the database's connect role, the access role.
func directGrantSQLIn(name, password string, until time.Time, admin, db, role string) string {
	q := postgres.QuoteIdent(name)
	return "BEGIN; CREATE ROLE " + q + " LOGIN PASSWORD " + postgres.QuoteLiteral(password) +
		" VALID UNTIL " + postgres.QuoteLiteral(until.UTC().Format(time.RFC3339Nano)) +
		"; COMMENT ON ROLE " + q + " IS 'timebox ephemeral login'; GRANT " + directManaged + " TO " + q +
		"; GRANT " + postgres.QuoteIdent(directConnectRole(db)) + " TO " + q + "; GRANT " + postgres.QuoteIdent(role) + " TO " + q + "; COMMIT"
}

func directRevokeSQL(name, admin string) string {
	q := postgres.QuoteIdent(name)
	return "ALTER ROLE " + q + " NOLOGIN; GRANT " + q + " TO CURRENT_USER; DROP ROLE " + q
}

// expiry holds the lags measured for grants ending within the same 10 seconds.
type expiry struct {
	sessionEnded, loginRefused, confirmed []time.Duration
}

// activateMany files and approves n requests ending at ends[i] and opens one session for each.
func (h *harness) activateMany(ctx context.Context, ends []time.Time) ([]*tbhttp.RequestView, []*timebox.Credentials, []*pgx.Conn, error) {
	n := len(ends)
	rs, cs, conns := make([]*tbhttp.RequestView, n), make([]*timebox.Credentials, n), make([]*pgx.Conn, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := h.request(ctx, ends[i])
			if err == nil && r.State != timebox.StateActive {
				err = fmt.Errorf("request %s is %s after approval", r.ID, r.Status)
			}
			if err == nil {
				rs[i] = r
				cs[i], err = h.requester.Credentials(ctx, r.ID)
			}
			if err == nil {
				conns[i], err = login(ctx, cs[i])
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return rs, cs, conns, <-errs
}

// expiryLag activates n grants ending spread over 10 seconds, each with an open session that
// runs a long query, and measures how long after its end each session died and each login was
// refused.
func (h *harness) expiryLag(ctx context.Context, n int) (*expiry, error) {
	base := time.Now().Add(time.Duration(n)*60*time.Millisecond + 10*time.Second)
	ends := make([]time.Time, n)
	for i := range ends {
		ends[i] = base.Add(time.Duration(i) * 10 * time.Second / time.Duration(n))
	}
	rs, cs, conns, err := h.activateMany(ctx, ends)
	if err != nil {
		return nil, err
	}
	if time.Now().After(base) {
		return nil, fmt.Errorf("activating %d grants took past the first end; raise the lead time", n)
	}
	if h.beforeExpiry != nil {
		h.beforeExpiry(base)
	}
	res := &expiry{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() { // the session runs a query across its end; it must die
			defer wg.Done()
			_, err := conns[i].Exec(ctx, "SELECT pg_sleep(120)")
			died := time.Now()
			mu.Lock()
			if err != nil {
				res.sessionEnded = append(res.sessionEnded, died.Sub(rs[i].End))
			}
			mu.Unlock()
		}()
		if i%10 == 0 { // sample logins: try every 10 ms from 100 ms before the end
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Until(rs[i].End.Add(-100 * time.Millisecond)))
				for {
					tried := time.Now() // the refusal began at or before this attempt started
					conn, err := login(ctx, cs[i])
					if refusedLogin(err) {
						mu.Lock()
						res.loginRefused = append(res.loginRefused, tried.Sub(rs[i].End))
						mu.Unlock()
						return
					} else if err != nil { // not a refusal (too many clients, say): try again
						if ctx.Err() != nil {
							return
						}
						time.Sleep(10 * time.Millisecond)
						continue
					}
					conn.Close(ctx)
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	if len(res.sessionEnded) != n {
		return nil, fmt.Errorf("%d of %d sessions survived their window", n-len(res.sessionEnded), n)
	}
	confirmed, err := h.waitExpired(ctx, rs)
	res.confirmed = confirmed
	return res, err
}

// waitExpired waits until every request is expired and returns end → confirmation lags.
func (h *harness) waitExpired(ctx context.Context, rs []*tbhttp.RequestView) ([]time.Duration, error) {
	var out []time.Duration
	for _, r := range rs {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			got, err := h.requester.Request(ctx, r.ID)
			if err != nil {
				return nil, err
			}
			if got.State == timebox.StateExpired {
				out = append(out, got.EndedAt.Sub(got.End))
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("request %s still %s 30 s after its end", r.ID, got.Status)
			}
		}
	}
	return out, nil
}

// throughput compares removal rates.
type throughput struct {
	timebox, direct         float64
	timeboxTook, directTook time.Duration
}

// revocationThroughput ends n grants (each with an open session) at the same instant and
// times Timebox removing them all, then times the same statements issued directly with pgx
// in a loop on one connection.
func (h *harness) revocationThroughput(ctx context.Context, n int) (*throughput, error) {
	end := time.Now().Add(time.Duration(n)*60*time.Millisecond + 5*time.Second)
	ends := make([]time.Time, n)
	for i := range ends {
		ends[i] = end
	}
	rs, _, conns, err := h.activateMany(ctx, ends)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	confirmed, err := h.waitExpired(ctx, rs)
	if err != nil {
		return nil, err
	}
	t := &throughput{timeboxTook: pct(confirmed, 100)}
	t.timebox = float64(n) / t.timeboxTook.Seconds()

	admin, err := pgx.Connect(ctx, h.pg.URL(h.admin, h.adminPassword, benchDB))
	if err != nil {
		return nil, err
	}
	defer admin.Close(ctx)
	names := make([]string, n)
	var sessions []*pgx.Conn
	defer func() { closeAll(sessions) }()
	for i := range names {
		names[i] = fmt.Sprintf("direct_rev_%d", i)
		password := timebox.RandomPassword(32)
		if _, err := admin.Exec(ctx, directGrantSQL(names[i], password, time.Now().Add(time.Hour), h.admin)); err != nil {
			return nil, err
		}
		conn, err := login(ctx, &timebox.Credentials{User: names[i], Password: password, Host: h.pg.Host, Port: h.pg.Port, Database: benchDB})
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, conn)
	}
	start := time.Now()
	for _, name := range names {
		if err := directRevoke(ctx, admin, name, h.admin, benchDB, benchRole); err != nil {
			return nil, err
		}
	}
	t.directTook = time.Since(start)
	t.direct = float64(n) / t.directTook.Seconds()
	return t, nil
}

// directRevoke removes a login with the engine's statements, in its order, on one admin
// connection: disable it and join it, end its sessions and wait until they are gone, look for
// dependencies (REASSIGN/DROP OWNED where there are any), drop it.
func directRevoke(ctx context.Context, admin *pgx.Conn, name, adminRole, db, role string) error {
	q := postgres.QuoteIdent(name)
	if _, err := admin.Exec(ctx, "ALTER ROLE "+q+" NOLOGIN; GRANT "+q+" TO CURRENT_USER"); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name); err != nil {
		return err
	}
	for left := 1; left > 0; time.Sleep(time.Millisecond) {
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", name).Scan(&left); err != nil {
			return err
		}
	}
	var deps int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass
		AND refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) AND dbid <> 0`, name).Scan(&deps); err != nil {
		return err
	}
	if deps > 0 {
		if _, err := admin.Exec(ctx, "REASSIGN OWNED BY "+q+" TO "+postgres.QuoteIdent(adminRole)+"; DROP OWNED BY "+q); err != nil {
			return err
		}
	}
	_, err := admin.Exec(ctx, "DROP ROLE "+q)
	return err
}

func closeAll(conns []*pgx.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close(context.Background())
		}
	}
}

// refusedLogin reports whether err is the server refusing the login itself (invalid
// password: what VALID UNTIL, NOLOGIN or a dropped role answer), not another failure such as
// "too many clients", which would count as a refusal before the end.
func refusedLogin(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}
