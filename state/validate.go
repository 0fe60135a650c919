package state

import (
	"fmt"
	"strconv"

	"regexp"
	"slices"
	"strings"

	"github.com/sitefleet/sitefleet/model"

	"golang.org/x/net/idna"
)

// Limits on what a site may hold.
const (
	// MaxHostnameLength is the longest host name accepted (RFC 1035).
	MaxHostnameLength = 253
	// MaxAliases is the most aliases one site may have.
	MaxAliases = 50
)

// ReservedSuffix is the domain suffix (RFC 6761) that sites may not use:
// nodes use names under it internally.
const ReservedSuffix = ".invalid"

var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// idnaProfile converts internationalised names to punycode and refuses
// anything that is not a valid host name under IDNA 2008.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.ValidateLabels(true),
	idna.StrictDomainName(true),
	idna.Transitional(false),
)

// NormalizeHostname returns name lower-cased, with internationalised labels
// converted to punycode, or an Invalid error that says what is wrong with it.
// Wildcards, trailing dots, IP addresses and names under ReservedSuffix are
// refused.
func NormalizeHostname(name string) (string, error) {
	if name == "" {
		return "", Errorf(Invalid, "host name is empty")
	}
	if len(name) > 4*MaxHostnameLength {
		return "", Errorf(Invalid, "host name is too long (%d bytes, at most %d)", len(name), MaxHostnameLength)
	}
	if strings.HasPrefix(name, "*") {
		return "", Errorf(Invalid, "host name %q: wildcards are not supported", name)
	}
	if strings.HasSuffix(name, ".") {
		return "", Errorf(Invalid, "host name %q: remove the trailing dot", name)
	}
	if i := strings.IndexFunc(name, isForbiddenRune); i >= 0 {
		return "", Errorf(Invalid, "host name %q: character %q is not allowed", name, name[i:i+1])
	}
	ascii, err := idnaProfile.ToASCII(name)
	if err != nil {
		return "", Errorf(Invalid, "host name %q is not a valid RFC 1123 name: %v", name, err)
	}
	ascii = strings.ToLower(ascii)
	if err := checkHostname(ascii); err != nil {
		return "", Errorf(Invalid, "host name %q: %s", name, err)
	}
	return ascii, nil
}

// isForbiddenRune reports characters that are never part of a host name and
// that IDNA mapping must not get a chance to reinterpret.
func isForbiddenRune(r rune) bool {
	return r <= ' ' || r == 0x7f || strings.ContainsRune(";{}$\"'`\\/#:@?&%=,<>|[]()!~^", r)
}

// checkHostname applies RFC 1123 to an ASCII name.
func checkHostname(name string) error {
	if len(name) > MaxHostnameLength {
		return fmt.Errorf("too long (%d characters, at most %d)", len(name), MaxHostnameLength)
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return fmt.Errorf("empty label")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %q is longer than 63 characters", l)
		}
		if !labelRE.MatchString(l) {
			return fmt.Errorf("label %q must be letters, digits and inner hyphens", l)
		}
	}
	if isDigits(labels[len(labels)-1]) {
		return fmt.Errorf("IP addresses are not site names")
	}
	if strings.HasSuffix(name, ReservedSuffix) || name == ReservedSuffix[1:] {
		return fmt.Errorf("names under %s are reserved", ReservedSuffix)
	}
	if isNginxMapKeyword(name) {
		return fmt.Errorf("%q is a reserved word of the web server's configuration and cannot name a site", name)
	}
	return nil
}

// isNginxMapKeyword reports the single-label names that nginx reads as a
// parameter or directive inside a map block even when quoted; a site by
// that name would make every node's config fail.
func isNginxMapKeyword(name string) bool {
	switch name {
	case "default", "hostnames", "include", "volatile":
		return true
	}
	return false
}

func isDigits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

// NormalizeSite validates a site and returns it in canonical form: host
// names normalised, aliases sorted and without duplicates. The error is an
// Invalid *Error that names the field at fault.
func NormalizeSite(s Site) (Site, error) {
	domain, err := NormalizeHostname(s.Domain)
	if err != nil {
		return Site{}, withField("domain", err)
	}
	if len(s.Aliases) > MaxAliases {
		return Site{}, Errorf(Invalid, "aliases: %d given, at most %d allowed", len(s.Aliases), MaxAliases)
	}
	aliases := make([]string, 0, len(s.Aliases))
	for i, a := range s.Aliases {
		n, err := NormalizeHostname(a)
		if err != nil {
			return Site{}, withField(fmt.Sprintf("aliases[%d]", i), err)
		}
		if n == domain {
			return Site{}, Errorf(Invalid, "aliases[%d]: %q is the site's own domain", i, a)
		}
		aliases = append(aliases, n)
	}
	slices.Sort(aliases)
	aliases = slices.Compact(aliases)
	if err := ValidateDeployment(s.Deployment); err != nil {
		return Site{}, withField("deployment", err)
	}
	if len(s.History) > MaxHistory {
		return Site{}, Errorf(Invalid, "history: %d entries, at most %d", len(s.History), MaxHistory)
	}
	for i := range s.History {
		if err := ValidateDeployment(&s.History[i]); err != nil {
			return Site{}, withField(fmt.Sprintf("history[%d]", i), err)
		}
	}
	previews, err := normalizePreviews(domain, append([]string{domain}, aliases...), s.Previews)
	if err != nil {
		return Site{}, err
	}
	tlsCfg, err := normalizeTLS(s.TLS)
	if err != nil {
		return Site{}, err
	}
	keep, err := normalizeKeepAssets(s.Options.KeepAssets)
	if err != nil {
		return Site{}, err
	}
	protection, err := normalizeProtection(s.Options.Protection)
	if err != nil {
		return Site{}, err
	}
	out := s
	out.Options.KeepAssets = keep
	out.Options.Protection = protection
	out.Domain = domain
	out.Aliases = aliases
	out.TLS = tlsCfg
	out.Previews = previews
	if len(out.Aliases) == 0 {
		out.Aliases = nil
	}
	out.Revision = 0
	return out, nil
}

func withField(field string, err error) error {
	if e, ok := err.(*Error); ok {
		return &Error{Code: e.Code, Message: field + ": " + e.Message}
	}
	return err
}

// ValidateSites normalises every site and checks that no name is used twice
// across them. It returns the normalised sites sorted by domain.
func ValidateSites(sites []Site) ([]Site, error) {
	out := make([]Site, 0, len(sites))
	owner := make(map[string]string, len(sites))
	for i, s := range sites {
		n, err := NormalizeSite(s)
		if err != nil {
			return nil, withField(fmt.Sprintf("sites[%d]", i), err)
		}
		for _, name := range n.Claims() {
			if other, taken := owner[name]; taken {
				return nil, Errorf(NameTaken, "sites[%d]: name %q is already used by site %q", i, name, other)
			}
			owner[name] = n.Domain
		}
		out = append(out, n)
	}
	slices.SortFunc(out, ByDomain)
	return out, nil
}

// KeepAssets limits.
const (
	MaxKeepAssetsPaths  = 16
	MinKeepAssetsWindow = 60
	MaxKeepAssetsWindow = 30 * 24 * 3600
)

// normalizeKeepAssets checks the old-assets option and returns a copy with
// the patterns sorted and without duplicates (nil for none).
func normalizeKeepAssets(k *KeepAssets) (*KeepAssets, error) {
	if k == nil {
		return nil, nil
	}
	if len(k.Paths) == 0 || len(k.Paths) > MaxKeepAssetsPaths {
		return nil, Errorf(Invalid, "options.keepAssets.paths: give 1 to %d path patterns, not %d", MaxKeepAssetsPaths, len(k.Paths))
	}
	if k.WindowSeconds < MinKeepAssetsWindow || k.WindowSeconds > MaxKeepAssetsWindow {
		return nil, Errorf(Invalid, "options.keepAssets.windowSeconds: %d is outside %d..%d (one minute to 30 days)", k.WindowSeconds, MinKeepAssetsWindow, MaxKeepAssetsWindow)
	}
	paths, err := normalizePatterns("options.keepAssets.paths", k.Paths)
	if err != nil {
		return nil, err
	}
	return &KeepAssets{Paths: paths, WindowSeconds: k.WindowSeconds}, nil
}

// normalizePatterns checks path patterns (see badAssetPattern) and
// returns them sorted, without duplicates; nil for none. field names
// them in errors.
func normalizePatterns(field string, pats []string) ([]string, error) {
	if len(pats) == 0 {
		return nil, nil
	}
	out := make([]string, 0, len(pats))
	for i, p := range pats {
		if reason := badAssetPattern(p); reason != "" {
			return nil, Errorf(Invalid, "%s[%d]: %.80q %s", field, i, p, reason)
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// badAssetPattern says why p is not a path pattern, or "": it must be
// "/dir/*" or an exact path, of letters, digits and "-._~/", without empty,
// "." or ".." elements, at most 256 bytes.
func badAssetPattern(p string) string {
	if len(p) < 2 || len(p) > 256 || p[0] != '/' {
		return "must start with / and be 2 to 256 bytes"
	}
	body := strings.TrimSuffix(p, "/*")
	if body == "" {
		return "" // "/*": every path
	}
	for _, r := range body {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~/", r)
		if !ok {
			return "may hold only letters, digits and -._~/ (and end in /* for a directory)"
		}
	}
	for _, elem := range strings.Split(body[1:], "/") {
		if elem == "" || elem == "." || elem == ".." {
			return "has an empty, \".\" or \"..\" element"
		}
	}
	return ""
}

// ValidatePreviewName checks the name of a preview: [a-z0-9] with inner
// single hyphens, 1 to model.MaxPreviewName characters.
func ValidatePreviewName(name string) error {
	if name == "" || len(name) > model.MaxPreviewName || !labelRE.MatchString(name) || strings.Contains(name, "--") {
		return Errorf(Invalid, "preview name %.40q: use 1 to %d lower-case letters, digits and single inner hyphens", name, model.MaxPreviewName)
	}
	if len(name) == 2 {
		// "ab--site" would hold "--" at positions 3-4, which DNS reserves
		// for IDNs ("xn--"): CAs and browsers treat such labels apart.
		return Errorf(Invalid, "preview name %q: use 1 or at least 3 characters (a 2-character name makes the host look like an IDN)", name)
	}
	return nil
}

// normalizePreviews checks a site's previews and returns them sorted by
// name (nil for none). A preview's host must be a host name whose first
// label is <name>--<the site's domain, dots as hyphens>, and none of the
// site's names.
func normalizePreviews(domain string, names []string, previews []Preview) ([]Preview, error) {
	if len(previews) == 0 {
		return nil, nil
	}
	if len(previews) > model.MaxPreviews {
		return nil, Errorf(Invalid, "previews: %d, at most %d", len(previews), model.MaxPreviews)
	}
	out := slices.Clone(previews)
	slices.SortFunc(out, func(a, b Preview) int { return strings.Compare(a.Name, b.Name) })
	for i, p := range out {
		field := fmt.Sprintf("previews[%s]", p.Name)
		if err := ValidatePreviewName(p.Name); err != nil {
			return nil, withField("previews", err)
		}
		if i > 0 && out[i-1].Name == p.Name {
			return nil, Errorf(Invalid, "previews: two previews are called %q", p.Name)
		}
		if err := checkHostname(p.Host); err != nil {
			return nil, Errorf(Invalid, "%s.host %.80q: %s", field, p.Host, err)
		}
		label, _, _ := strings.Cut(p.Host, ".")
		if want := model.PreviewHost(p.Name, domain, "x"); label+".x" != want || !strings.Contains(p.Host, ".") {
			return nil, Errorf(Invalid, "%s.host %.80q must be %s.<preview domain>", field, p.Host, strings.TrimSuffix(want, ".x"))
		}
		if slices.Contains(names, p.Host) {
			return nil, Errorf(Invalid, "%s.host %q is one of the site's names", field, p.Host)
		}
		if err := ValidateDeployment(&p.Deployment); err != nil {
			return nil, withField(field+".deployment", err)
		}
	}
	return out, nil
}

// Protection limits.
const (
	MaxProtectedUsers = 100
	MaxProtectedPaths = 32
	// MinBcryptCost and MaxBcryptCost bound the cost of password hashes:
	// every login not seen before costs the node one hash at that cost.
	MinBcryptCost = 8
	MaxBcryptCost = 12
)

var (
	basicUserRE = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,64}$`)
	bcryptRE    = regexp.MustCompile(`^\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}$`)
)

// normalizeProtection checks a site's basic authentication and returns a
// copy with users sorted by name and paths sorted (nil for none).
func normalizeProtection(p *model.Protection) (*model.Protection, error) {
	if p == nil {
		return nil, nil
	}
	if len(p.Users) == 0 || len(p.Users) > MaxProtectedUsers {
		return nil, Errorf(Invalid, "options.protection.users: give 1 to %d users, not %d", MaxProtectedUsers, len(p.Users))
	}
	if len(p.Paths) > MaxProtectedPaths {
		return nil, Errorf(Invalid, "options.protection.paths: at most %d patterns, not %d", MaxProtectedPaths, len(p.Paths))
	}
	if p.PreviewsOnly && len(p.Paths) > 0 {
		return nil, Errorf(Invalid, "options.protection: previewsOnly protects every path of the previews; give no paths with it")
	}
	users := slices.Clone(p.Users)
	slices.SortFunc(users, func(a, b model.BasicUser) int { return strings.Compare(a.Name, b.Name) })
	cost := 0
	for i, u := range users {
		if !basicUserRE.MatchString(u.Name) {
			return nil, Errorf(Invalid, "options.protection.users: name %.70q: use 1 to 64 letters, digits and ._@+-", u.Name)
		}
		if i > 0 && users[i-1].Name == u.Name {
			return nil, Errorf(Invalid, "options.protection.users: %q is listed twice", u.Name)
		}
		m := bcryptRE.FindStringSubmatch(u.Hash)
		if m == nil {
			return nil, Errorf(Invalid, "options.protection.users[%s].hash: not a bcrypt hash ($2a$, $2b$ or $2y$); passwords are never stored in clear", u.Name)
		}
		switch c, _ := strconv.Atoi(m[1]); {
		case c < MinBcryptCost || c > MaxBcryptCost:
			return nil, Errorf(Invalid, "options.protection.users[%s].hash: cost %d is outside %d..%d", u.Name, c, MinBcryptCost, MaxBcryptCost)
		case cost != 0 && c != cost:
			return nil, Errorf(Invalid, "options.protection.users: every hash of a site must have the same cost (%d and %d), or logins would tell which users exist by their time", cost, c)
		default:
			cost = c
		}
	}
	paths, err := normalizePatterns("options.protection.paths", p.Paths)
	if err != nil {
		return nil, err
	}
	return &model.Protection{Users: users, Paths: paths, PreviewsOnly: p.PreviewsOnly}, nil
}
