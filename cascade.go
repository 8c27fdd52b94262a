package timebox

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Causes of a cascade, recorded in its audit events.
const (
	CauseUserRemoved     = "user_removed"
	CauseUserDisabled    = "user_disabled"
	CauseDatabaseRemoved = "database_removed"
	CauseAccessRemoved   = "access_removed"
)

// cascadeCause returns why live request r must end under the current catalog and the users
// disabled through the API ("" when it may go on): a cause and a sentence for people.
func (s *Service) cascadeCause(r *Request, disabled map[string]*DisabledUser) (string, string) {
	if cause, note := s.userGone(r.Requester, disabled); cause != "" {
		return cause, note
	}
	db, err := s.Catalog.Database(r.Database)
	if err != nil {
		return CauseDatabaseRemoved, fmt.Sprintf("database %s was removed from the configuration", r.Database)
	}
	if r.Access == AdHocAccess && db.Method != MethodEphemeralLogin {
		return CauseAccessRemoved, fmt.Sprintf("database %s now uses method %s; ad-hoc grants need %s", r.Database, db.Method, MethodEphemeralLogin)
	} else if r.Access != AdHocAccess {
		if _, err := s.Catalog.Grants(db, r.Access); err != nil {
			return CauseAccessRemoved, fmt.Sprintf("access level %s was removed from the configuration", r.Access)
		}
	}
	return "", ""
}

// userGone says why user may no longer act ("" when they may): removed from the
// configuration, disabled there, or disabled through the API.
func (s *Service) userGone(user string, disabled map[string]*DisabledUser) (string, string) {
	u, err := s.Catalog.User(user)
	switch {
	case err != nil:
		return CauseUserRemoved, fmt.Sprintf("user %s was removed from the configuration", user)
	case u.Disabled:
		return CauseUserDisabled, fmt.Sprintf("user %s is disabled in the configuration", user)
	case disabled[user] != nil:
		d := disabled[user]
		note := fmt.Sprintf("user %s was disabled by %s", user, d.By)
		if d.Note != "" {
			note += ": " + d.Note
		}
		return CauseUserDisabled, note
	}
	return "", ""
}

// Cascade ends the live requests that the catalog (or a user disabled through the API) no
// longer allows: a removed or disabled user's pending requests are cancelled and approved or
// active ones revoked; a removed database's or access level's pending requests are denied
// and approved or active ones revoked. Approved requests whose window has not started go
// back to pending when they needed the approval of a user removed or disabled since (see
// reopenApprovals). Each change is recorded with an audit event by "timebox" naming the
// cause. The API tokens of removed or disabled users are revoked, so that a user enabled
// again needs a new one. It returns how many requests it ended; the server runs it at
// start, and after a user is disabled.
func (s *Service) Cascade(ctx context.Context) (int, error) {
	n, reopened := 0, 0
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
		if n, err = s.cascade(tx, ""); err != nil {
			return err
		}
		if reopened, err = s.reopenApprovals(tx, s.now()); err != nil {
			return err
		}
		return s.revokeUnusableTokens(tx)
	})
	if n+reopened > 0 {
		s.wake()
	}
	return n, err
}

// cascade is Cascade inside tx, for the requests of user only when user is set.
func (s *Service) cascade(tx Tx, user string) (int, error) {
	disabled, err := tx.DisabledUsers()
	if err != nil {
		return 0, err
	}
	live, err := tx.FindRequests(RequestFilter{States: []State{StatePending, StateApproved, StateActive}, Requester: user})
	if err != nil {
		return 0, err
	}
	n := 0
	now := s.now()
	for _, r := range live {
		cause, note := s.cascadeCause(r, disabled)
		if cause == "" || r.Ending != EndingNone {
			continue
		}
		action := ActionRevoke
		switch {
		case r.State == StatePending && (cause == CauseUserRemoved || cause == CauseUserDisabled):
			action = ActionCancel
		case r.State == StatePending:
			action = ActionDeny
		}
		if err := s.endFor(tx, r, action, note, cause, now); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// endFor ends r by action on Timebox's own authority, with an event naming the cause.
func (s *Service) endFor(tx Tx, r *Request, action Action, note, cause string, now time.Time) error {
	if err := s.end(tx, r, Actor, action, note, now); err != nil { // finishes it when nothing is on the database
		return err
	}
	return tx.AppendEvent(requestEvent(now, Actor, "request.cascade", r, map[string]any{"cause": cause, "note": note, "action": string(action)}))
}

// DisableUser disables a user through the API (admins only): they can no longer sign in,
// request or review, their live requests end at once (see Cascade), requests whose window
// has not started go back to pending when they needed the user's approval (see
// reopenApprovals), and their API tokens are revoked (enabling them again does not revive
// those), in one transaction.
// ENOTFOUND for a user the catalog does not know.
func (s *Service) DisableUser(ctx context.Context, actor, name, note string) (int, error) {
	if !s.Catalog.IsAdmin(actor) {
		return 0, Errorf(EFORBIDDEN, "only admins may disable users")
	} else if _, err := s.Catalog.User(name); err != nil {
		return 0, err
	} else if err := checkText("note", note, true); err != nil {
		return 0, err
	} else if name == actor {
		return 0, Errorf(EINVALID, "admins may not disable themselves")
	}
	n := 0
	err := s.Store.Update(ctx, func(tx Tx) (err error) {
		now := s.now()
		d := &DisabledUser{Name: name, By: actor, Note: strings.TrimSpace(note), At: now}
		if err := tx.DisableUser(d); err != nil {
			return err
		} else if err := tx.AppendEvent(&Event{Time: now, Actor: actor, Action: "user.disabled", Details: map[string]any{"user": name, "note": d.Note}}); err != nil {
			return err
		}
		if n, err = s.cascade(tx, name); err != nil {
			return err
		}
		if _, err = s.reopenApprovals(tx, now); err != nil {
			return err
		}
		// Enabling the user again does not bring these back: an admin issues new ones.
		return revokeUserTokens(tx, name, actor, CauseUserDisabled, now)
	})
	if err != nil {
		return 0, fmt.Errorf("disable user: %w", err)
	}
	s.wake()
	return n, nil
}

// EnableUser lifts a disable made through the API (admins only). ENOTFOUND when the user is
// not disabled there.
func (s *Service) EnableUser(ctx context.Context, actor, name string) error {
	if !s.Catalog.IsAdmin(actor) {
		return Errorf(EFORBIDDEN, "only admins may enable users")
	}
	return s.Store.Update(ctx, func(tx Tx) error {
		if err := tx.EnableUser(name); err != nil {
			return err
		}
		return tx.AppendEvent(&Event{Time: s.now(), Actor: actor, Action: "user.enabled", Details: map[string]any{"user": name}})
	})
}

// DisabledUsers lists the users disabled through the API (admins and auditors).
func (s *Service) DisabledUsers(ctx context.Context, actor string) (out []*DisabledUser, err error) {
	if !s.Catalog.IsAdmin(actor) && !s.Catalog.IsAuditor(actor) {
		return nil, Errorf(EFORBIDDEN, "only admins and auditors may list disabled users")
	}
	err = s.Store.View(ctx, func(tx Tx) error {
		m, err := tx.DisabledUsers()
		for _, d := range m {
			out = append(out, d)
		}
		return err
	})
	return out, err
}
