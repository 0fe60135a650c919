// Package model holds the objects of sitefleet's desired state as they
// travel between the API, its Go client and the state store: sites, their
// TLS settings and deployments, bundle and certificate records, and the
// exported state document.
//
// It is plain data with pure methods and imports the standard library only,
// so a program that uses the API client does not link etcd or gRPC.
// Validation and storage live in package state, which re-exports these types
// under the same names (as package os does for io/fs).
package model
