package store

import (
	"slices"

	"github.com/timebox-dev/timebox"
)

// FindAccess returns the requests whose access the database confirmed (activated_at set, in
// a state that follows activation) and that overlapped [f.From, f.To): activated before To,
// and either still live (ended_at NULL) or ended after From. Most recently activated first.
//
// The state is checked on the rows read rather than in the query, where it would draw the
// planner to the (unselective) state index.
//
// The partial indexes of migration 00010 (on database, ended_at and on ended_at, both WHERE
// activated_at IS NOT NULL) serve the "ended after From" side, the selective one for a past
// range; the live side is the few requests still active.
func (t *tx) FindAccess(f timebox.AccessFilter) ([]*timebox.Request, error) {
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
	var list []*timebox.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, internal(err, "read access")
		}
		if slices.Contains(states, r.State) { // only activation sets activated_at; a row edited otherwise is not access
			list = append(list, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err, "list access")
	}
	return list, nil
}

// accessQuery is FindAccess's statement and arguments: the union of the access that ended
// after From (a range scan of an access index) and the access still live (ended_at NULL in
// the same index), so that neither side reads the history before the range.
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
	// A compound SELECT orders by its result columns' names: activated_at and id are the
	// request's (the grant's columns are named otherwise).
	query := `SELECT ` + requestColumns + whereClause(ended) + ` UNION ALL SELECT ` + requestColumns + whereClause(live) +
		` ORDER BY activated_at DESC, id DESC`
	if f.Limit > 0 {
		query, all = query+` LIMIT ?`, append(all, f.Limit)
	}
	return query, all
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
