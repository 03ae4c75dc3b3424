package httperr

import (
	"net/http"

	"github.com/pixelrelay/relay/router"
)

// deliveryErrors is every router outcome's response: its status and
// message, under the outcome's own code. TestEveryOutcomeHasARow holds it to
// router.Outcomes.
var deliveryErrors = []struct {
	o      *router.Outcome
	status int
	msg    string
	retry  int
}{
	{router.ErrNoDevice, http.StatusNotFound, "device not connected", 0},
	{router.ErrBusy, http.StatusServiceUnavailable, "device has too many messages in flight", 1},
	{router.ErrTimeout, http.StatusGatewayTimeout, "device did not answer in time", 0},
	{router.ErrGone, http.StatusBadGateway, "device disconnected before answering", 0},
	{router.ErrBadReply, http.StatusBadGateway, "device sent an invalid reply", 0},
	{router.ErrOutdated, http.StatusNotImplemented, "the device speaks protocol version 1, which cannot carry this webhook's parameters; update the device", 0},
	{router.ErrUnavailable, http.StatusServiceUnavailable, "the relay cannot reach its other nodes; retry shortly", 1},
	// Nobody reads this answer, but it is counted. 499 is nginx's
	// "client closed request".
	{router.ErrCanceled, 499, "the caller hung up before the device answered", 0},
}

// byOutcome is deliveryErrors' Errors, in its order.
var byOutcome = func() []*Error {
	es := make([]*Error, len(deliveryErrors))
	for i, d := range deliveryErrors {
		es[i] = New(d.status, d.o.Code(), d.msg, d.retry)
	}
	return es
}()

// delivery returns o's response, nil if it has none.
func delivery(o *router.Outcome) *Error {
	for i, d := range deliveryErrors {
		if d.o == o {
			return byOutcome[i]
		}
	}
	return nil
}
