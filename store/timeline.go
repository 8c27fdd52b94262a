package store

import (
	"encoding/json"
	"slices"

	"github.com/timebox-dev/timebox"
)

// FindAccess returns the access the database confirmed (activated_at set, in a state that
// follows activation) that overlapped [f.From, f.To): activated before To, and either still
// live (ended_at NULL) or ended after From. Most recently activated first. It reads only the
// columns a period needs: no reviews, grant or proofs.
//
// The state is checked on the rows read rather than in the query, where it would draw the
// planner to the (unselective) state index.
//
// The partial indexes of migration 00010 (led by database, ended_at and by ended_at, both
// WHERE activated_at IS NOT NULL, and holding the other columns the conditions name) serve
// the "ended after From" side, the selective one for a past range; the live side is the few
// requests still active.
func (t *tx) FindAccess(f timebox.AccessFilter) ([]timebox.AccessPeriod, error) {
	if f.From.IsZero() || f.To.IsZero() {
		return nil, timebox.Errorf(timebox.EINVALID, "store: an access query needs a start and an end")
	}
	query, args := t.accessQuery(f)
	states := timebox.AccessStates()
	rows, err := t.query(query, args...)
	if err != nil {
		return nil, internal(err, "list access")
	}
	defer rows.Close()
	var list []timebox.AccessPeriod
	for rows.Next() {
		var p timebox.AccessPeriod
		var policy, tampered string
		if err := rows.Scan(&p.RequestID, &p.User, &p.Database, &p.Level, &p.State, &p.Ending,
			timeCol{&p.From}, timeCol{&p.To}, timeCol{&p.End}, &policy, &tampered); err != nil {
			return nil, internal(err, "read access")
		}
		var pol struct {
			BreakGlass bool `json:"break_glass"`
		}
		if err := json.Unmarshal([]byte(policy), &pol); err != nil {
			return nil, internal(err, "read the policy of request %s", p.RequestID)
		}
		p.BreakGlass, p.Tampered = pol.BreakGlass, tampered != ""
		if slices.Contains(states, p.State) { // only activation sets activated_at; a row edited otherwise is not access
			list = append(list, p)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "list access")
	}
	return list, nil
}

// accessColumns are the columns FindAccess scans.
const accessColumns = `r.id, r.requester, r.database, r.access, r.state, r.ending, r.activated_at, r.ended_at,
	r.end_at, r.policy, r.tampered FROM requests r`

// accessQuery is FindAccess's statement and arguments, in two steps. The keys (id and
// activation) of the access that ended after From (a range scan of an access index) and of
// the access still live (ended_at NULL in the same index) come from the indexes alone, which
// hold every column the conditions name; they are sorted and limited while still narrow.
// Then only the requests kept are read from the table.
func (t *tx) accessQuery(f timebox.AccessFilter) (string, []any) {
	where := []string{"r.activated_at IS NOT NULL", "r.activated_at < ?"}
	args := []any{t.timeArg(f.To)}
	if f.Database != "" {
		where, args = append(where, "r.database = ?"), append(args, f.Database)
	}
	if f.Requester != "" {
		where, args = append(where, "r.requester = ?"), append(args, f.Requester)
	}
	if v := f.Visible; v != nil {
		cond, vargs := visibleCond(v)
		where, args = append(where, cond), append(args, vargs...)
	}
	ended := append(slices.Clip(where), "r.ended_at > ?")
	live := append(slices.Clip(where), "r.ended_at IS NULL")
	all := append(append(slices.Clip(args), t.timeArg(f.From)), args...)
	// A compound SELECT orders by its result columns' names.
	keys := `SELECT r.id, r.activated_at FROM requests r` + whereClause(ended) +
		` UNION ALL SELECT r.id, r.activated_at FROM requests r` + whereClause(live) + ` ORDER BY activated_at DESC, id DESC`
	if f.Limit > 0 {
		keys, all = keys+` LIMIT ?`, append(all, f.Limit)
	}
	return `SELECT ` + accessColumns + ` WHERE r.id IN (SELECT id FROM (` + keys + `) k) ORDER BY r.activated_at DESC, r.id DESC`, all
}

// visibleCond is the condition (and its arguments) that keeps what v may see: v's own
// requests and those of v's databases.
func visibleCond(v *timebox.Visibility) (string, []any) {
	if len(v.Databases) == 0 {
		return "r.requester = ?", []any{v.Requester}
	}
	args := []any{v.Requester}
	for _, d := range v.Databases {
		args = append(args, d)
	}
	return "(r.requester = ? OR r.database IN (" + placeholders(len(v.Databases)) + "))", args
}
