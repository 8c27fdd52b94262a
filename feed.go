package timebox

// Change is one committed audit event as the change feed announces it: enough for a page to
// know whether it shows what changed.
type Change struct {
	Seq       int64  `json:"seq"`
	Action    string `json:"action"`
	Actor     string `json:"actor,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Database  string `json:"database,omitempty"`
}

// Feed announces the changes the store commits, on every replica sharing the store
// (PostgreSQL LISTEN/NOTIFY) or in this process (SQLite).
type Feed interface {
	// Subscribe returns a channel of the changes committed from now on and a function that
	// ends the subscription. A subscriber too slow to read loses changes rather than
	// slowing writers: it then receives a Change with Seq 0, meaning "reload everything".
	Subscribe() (<-chan Change, func())
}
