package timebox

import (
	"context"
	"time"
)

// CodeSlackRequest is the signature of an interactivity request from Slack (a click on an
// Approve or Deny button), recorded when it is handled so that the same signed request sent
// again within Slack's five-minute window is refused, on this replica or another.
const CodeSlackRequest = "slack_request"

// UseSlackRequest records that the Slack request with signature sig (the verified HMAC, in
// hex) was handled; it is remembered until expires, when the request's timestamp is too old
// to be accepted anyway. ECONFLICT when it was handled already (a replay).
func (s *Service) UseSlackRequest(ctx context.Context, sig string, expires time.Time) error {
	now := s.now()
	c := &OneTimeCode{Hash: codeHash(CodeSlackRequest, sig), Kind: CodeSlackRequest, CreatedAt: now, ExpiresAt: expires, UsedAt: now}
	return s.Store.Update(ctx, func(tx Tx) error {
		if err := tx.DeleteOneTimeCodes(now); err != nil {
			return err
		}
		if err := tx.CreateOneTimeCode(c); ErrorCode(err) == ECONFLICT {
			return Errorf(ECONFLICT, "this Slack request was handled already (a replay)")
		} else if err != nil {
			return err
		}
		return nil
	})
}
