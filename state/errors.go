package state

import (
	"errors"
	"fmt"
)

// Code classifies an Error. The API maps each code to one HTTP status.
type Code string

// Error codes.
const (
	// Invalid: the input does not pass validation (HTTP 422).
	Invalid Code = "invalid"
	// NotFound: the object does not exist (HTTP 404).
	NotFound Code = "not_found"
	// Conflict: the write was based on a stale read; the precondition
	// revision no longer matches (HTTP 412).
	Conflict Code = "conflict"
	// NameTaken: a domain or alias is already used by another site (HTTP 409).
	NameTaken Code = "name_taken"
	// Exists: the object to create exists already (HTTP 409).
	Exists Code = "exists"
	// Busy: an import that spans several transactions holds the state;
	// other writes wait until it completes (HTTP 409).
	Busy Code = "busy"
	// InUse: the object is still used and cannot be removed (HTTP 409).
	InUse Code = "in_use"
	// TooLarge: the request is larger than a configured limit (HTTP 413).
	TooLarge Code = "too_large"
	// Unavailable: the state store cannot be reached within the timeout (HTTP 503).
	Unavailable Code = "unavailable"
)

// Error is a state error that is safe to show to a client: its Message says
// what is wrong in terms of the request, never internal details.
type Error struct {
	Code    Code
	Message string
	// Err is the underlying cause, if any; it is not shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the Code of the first *Error in err's chain, or "" if
// there is none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrFenceLost is the one sentinel for a write made after the leadership
// it needs ended: the state store's fenced writes wrap it in a Conflict
// *Error, and package cluster's fenced writes of its own records return it.
var ErrFenceLost = errors.New("the leadership this write needs has ended")
