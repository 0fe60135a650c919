package daemon

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/sitefleet/sitefleet/api"
	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
	sftls "github.com/sitefleet/sitefleet/tls"
)

// certService validates imported certificates and stores them with their
// keys sealed under the cluster key.
type certService struct {
	store  *state.Store
	sealer *sftls.Sealer
}

var _ api.Certificates = (*certService)(nil)

// Import checks the certificate, seals its key and stores it; a certificate
// that fails a check is refused with 422 naming the check.
func (c *certService) Import(ctx context.Context, req client.CertImport) (state.Certificate, error) {
	if err := sftls.ValidateID(req.ID); err != nil {
		return state.Certificate{}, state.Errorf(state.Invalid, "%v", err)
	}
	names := make([]string, 0, len(req.Domains))
	for _, d := range req.Domains {
		n, err := state.NormalizeHostname(d)
		if err != nil {
			return state.Certificate{}, err
		}
		names = append(names, n)
	}
	now := time.Now()
	parsed, err := sftls.ValidateImport([]byte(req.Chain), []byte(req.Key), names, now)
	if err != nil {
		var ie *sftls.ImportError
		if errors.As(err, &ie) {
			return state.Certificate{}, &state.Error{Code: state.Invalid, Message: "certificate refused: " + ie.Msg + " (check: " + ie.Check + ")", Err: err}
		}
		return state.Certificate{}, &state.Error{Code: state.Invalid, Message: "certificate refused: " + err.Error(), Err: err}
	}
	cert, err := sftls.NewCertificate(req.ID, sftls.TypeImported, parsed, c.sealer, now)
	if err != nil {
		return state.Certificate{}, err
	}
	return c.store.PutCertificate(ctx, cert, state.Precondition{})
}

// Get reads one certificate record.
func (c *certService) Get(ctx context.Context, id string) (state.Certificate, error) {
	return c.store.GetCertificate(ctx, id)
}

// List reads every certificate record.
func (c *certService) List(ctx context.Context) ([]state.Certificate, error) {
	return c.store.ListCertificates(ctx)
}

// Delete removes a certificate no site serves.
func (c *certService) Delete(ctx context.Context, id string) error {
	return c.store.DeleteCertificate(ctx, id)
}

// CheckRecords checks certificate records of a state document before it
// is imported: each key must open with this cluster's key.
func (c *certService) CheckRecords(certs []state.Certificate) error {
	for i, cert := range certs {
		if err := sftls.CheckRecord(cert, c.sealer); err != nil {
			msg := err.Error()
			if errors.Is(err, sftls.ErrWrongKey) {
				msg = "its key was sealed with another cluster key; restore it into a cluster whose secrets.key is the one it was exported from"
			}
			return state.Errorf(state.Invalid, "certificates[%d] (%.80s): %s", i, cert.ID, msg)
		}
	}
	return nil
}

// Pending lists the ACME names the leader is working on that have no
// certificate yet, with their last error.
func (c *certService) Pending(ctx context.Context, certs []state.Certificate) ([]client.CertificateInfo, error) {
	statuses, err := sftls.ACMEStatuses(ctx, c.store)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, cert := range certs {
		have[cert.ID] = true
	}
	var out []client.CertificateInfo
	for _, name := range slices.Sorted(maps.Keys(statuses)) {
		st := statuses[name]
		id := state.AutoCertID(state.CertACME, name)
		if have[id] || st.State == "issued" {
			continue
		}
		info := client.CertificateInfo{ID: id, Type: string(state.CertACME), Domains: []string{name}, Status: st.State, Error: st.Error}
		if !st.NextAttempt.IsZero() {
			next := st.NextAttempt
			info.NextAttempt = &next
		}
		out = append(out, info)
	}
	return out, nil
}
