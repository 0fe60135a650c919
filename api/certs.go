package api

import (
	"context"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sitefleet/sitefleet/api/client"
	"github.com/sitefleet/sitefleet/state"
)

// Certificates validates, seals, lists and removes certificates.
type Certificates interface {
	// Import checks a chain and key (and that they cover domains, if
	// given), seals the key and stores the record under id.
	Import(ctx context.Context, req client.CertImport) (state.Certificate, error)
	Get(ctx context.Context, id string) (state.Certificate, error)
	List(ctx context.Context) ([]state.Certificate, error)
	// Delete refuses a certificate that a site serves.
	Delete(ctx context.Context, id string) error
	// Pending describes the ACME certificates being obtained that are not
	// among certs yet, and annotates failing renewals.
	Pending(ctx context.Context, certs []state.Certificate) ([]client.CertificateInfo, error)
	// CheckRecords checks the records of a state import against the
	// cluster key.
	CheckRecords(certs []state.Certificate) error
}

// expiringSoon is when a certificate's status turns to "expiring".
const expiringSoon = 30 * 24 * time.Hour

// certInfo is the public view of a record: never any key material.
func certInfo(c state.Certificate, withChain bool, now time.Time) client.CertificateInfo {
	status := "valid"
	switch {
	case now.After(c.NotAfter):
		status = "expired"
	case now.Before(c.NotBefore):
		status = "not yet valid"
	case c.NotAfter.Sub(now) < expiringSoon:
		status = "expiring"
	}
	info := client.CertificateInfo{ID: c.ID, Type: string(c.Type), Domains: c.Domains, NotBefore: c.NotBefore,
		NotAfter: c.NotAfter, Issuer: c.Issuer, Serial: c.Serial, Status: status}
	if withChain {
		info.ChainPEM = c.ChainPEM
	}
	return info
}

func (s *server) listCertificates(w http.ResponseWriter, r *http.Request) error {
	certs, err := s.opts.Certificates.List(r.Context())
	if err != nil {
		return err
	}
	out := client.CertificateList{Certificates: []client.CertificateInfo{}}
	now := time.Now()
	for _, c := range certs {
		out.Certificates = append(out.Certificates, certInfo(c, false, now))
	}
	pending, err := s.opts.Certificates.Pending(r.Context(), certs)
	if err != nil {
		return err
	}
	out.Certificates = append(out.Certificates, pending...)
	return writeJSON(w, http.StatusOK, 0, out)
}

func (s *server) getCertificate(w http.ResponseWriter, r *http.Request) error {
	c, err := s.opts.Certificates.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c.Revision, certInfo(c, true, time.Now()))
}

func (s *server) importCertificate(w http.ResponseWriter, r *http.Request) error {
	var req client.CertImport
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	c, err := s.opts.Certificates.Import(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, c.Revision, certInfo(c, true, time.Now()))
}

func (s *server) deleteCertificate(w http.ResponseWriter, r *http.Request) error {
	id := chi.URLParam(r, "id")
	if err := s.opts.Certificates.Delete(r.Context(), id); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, 0, map[string]string{"deleted": id})
}
