package tls

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/sitefleet/sitefleet/state"
)

// Records is what Service needs of the state store.
type Records interface {
	PutCertificate(ctx context.Context, c state.Certificate, pre state.Precondition, guard ...state.Guard) (state.Certificate, error)
	ACMEStatuses(ctx context.Context) (map[string][]byte, error)
}

// Service is the certificate work behind the API: imports checked and
// sealed under the cluster key, exported records checked before a state
// import, and the ACME names the leader is still working on.
type Service struct {
	Records Records
	Sealer  *Sealer
}

// Import checks a chain and key (and that they cover domains, when given),
// seals the key and stores the record under id. A certificate that fails a
// check is refused with an Invalid *state.Error naming the check.
func (s *Service) Import(ctx context.Context, id string, chainPEM, keyPEM []byte, domains []string) (state.Certificate, error) {
	if err := ValidateID(id); err != nil {
		return state.Certificate{}, state.Errorf(state.Invalid, "%v", err)
	}
	names := make([]string, 0, len(domains))
	for _, d := range domains {
		n, err := state.NormalizeHostname(d)
		if err != nil {
			return state.Certificate{}, err
		}
		names = append(names, n)
	}
	now := time.Now()
	parsed, err := ValidateImport(chainPEM, keyPEM, names, now)
	if err != nil {
		var ie *ImportError
		if errors.As(err, &ie) {
			return state.Certificate{}, &state.Error{Code: state.Invalid, Message: "certificate refused: " + ie.Msg + " (check: " + ie.Check + ")", Err: err}
		}
		return state.Certificate{}, &state.Error{Code: state.Invalid, Message: "certificate refused: " + err.Error(), Err: err}
	}
	cert, err := NewCertificate(id, TypeImported, parsed, s.Sealer, now)
	if err != nil {
		return state.Certificate{}, err
	}
	return s.Records.PutCertificate(ctx, cert, state.Precondition{})
}

// CheckRecords checks the certificate records of a state document before
// it is imported: each key must open with this cluster's key.
func (s *Service) CheckRecords(certs []state.Certificate) error {
	for i, cert := range certs {
		if err := CheckRecord(cert, s.Sealer); err != nil {
			msg := err.Error()
			if errors.Is(err, ErrWrongKey) {
				msg = "its key was sealed with another cluster key; restore it into a cluster whose secrets.key is the one it was exported from"
			}
			return state.Errorf(state.Invalid, "certificates[%d] (%.80s): %s", i, cert.ID, msg)
		}
	}
	return nil
}

// Pending returns the status of each ACME name the leader is working on
// that has no certificate among have yet, sorted by name.
func (s *Service) Pending(ctx context.Context, have []state.Certificate) ([]ACMEStatus, error) {
	statuses, err := readACMEStatuses(ctx, s.Records)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, c := range have {
		ids[c.ID] = true
	}
	var out []ACMEStatus
	for _, name := range slices.Sorted(maps.Keys(statuses)) {
		st := statuses[name]
		if ids[state.AutoCertID(state.CertACME, name)] || st.State == "issued" {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}
