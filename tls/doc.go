// Package tls holds sitefleet's certificate core: sealing private keys at
// rest with the cluster key, the certificate record stored in etcd,
// validation of imported certificates, self-signed certificates, renewal
// timing and Diffie-Hellman parameters; and the leader's certificate work
// (self-signed issuance, DH generation, ACME through autocert), which
// talks to etcd and the CA. Inside
// this package the standard library's crypto/tls, when needed, is imported
// as stdtls because the package name shadows it.
//
// Private keys never leave this package in the clear inside a record:
// [Certificate.KeySealed] holds the key PEM sealed by a [Sealer] with the
// certificate ID as additional authenticated data, so a sealed key cannot be
// moved to another record, and a value sealed with another cluster key is
// reported as [ErrWrongKey] rather than as corruption.
package tls
