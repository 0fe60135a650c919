package main

import (
	"context"
	"errors"
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
