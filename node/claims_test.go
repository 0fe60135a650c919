package node

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/sitefleet/sitefleet/state"
)

// A pass updates the name owners of the last one with the sites that
// changed, and walks every site only when a name clashes. Whatever the
// order of changes, the sites it serves and the errors it reports must be
// those a walk of every site gives: random sequences of snapshots over a
// small pool of names (so that clashes, invalid and unreadable records
// come and go) are applied to one node pass after pass, and each result
// is compared with that of a node that sees the snapshot for the first
// time and holds the same last applied state.
func TestUsableSitesFollowRandomChanges(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			inc := &Node{}
			sites := map[string]state.Site{}
			unreadable := map[string]string{}
			rev := int64(1)
			var clashes, incremental int
			for step := range 60 {
				mutate(r, sites, unreadable, &rev)
				snap := &state.Snapshot{Revision: rev, Unreadable: maps.Clone(unreadable)}
				for _, d := range slices.Sorted(maps.Keys(sites)) {
					snap.Sites = append(snap.Sites, sites[d])
				}
				wasClean := inc.ownersClean
				got, gotErrs, _ := inc.usableSites(snap)
				ref := &Node{}
				ref.applied.Store(inc.applied.Load())
				want, wantErrs, _ := ref.usableSites(snap)
				if !slices.EqualFunc(got, want, func(a, b state.Site) bool { return reflect.DeepEqual(a, b) }) || !reflect.DeepEqual(gotErrs, wantErrs) {
					t.Fatalf("step %d: the pass serves\n%v\nerrors %v\nbut a walk of every site gives\n%v\nerrors %v", step, got, gotErrs, want, wantErrs)
				}
				if len(gotErrs) > 0 {
					clashes++
				}
				if wasClean && inc.ownersClean {
					incremental++
				}
				inc.applied.Store(&state.Snapshot{Revision: rev, Sites: got})
			}
			if clashes == 0 || incremental == 0 {
				t.Fatalf("the run had %d passes with errors and %d updated in place: it tests too little", clashes, incremental)
			}
		})
	}
}

// mutate changes a few sites of the pool: adds, removes, changes aliases,
// or makes a record invalid or unreadable.
func mutate(r *rand.Rand, sites map[string]state.Site, unreadable map[string]string, rev *int64) {
	name := func() string { return fmt.Sprintf("%s%d.test", []string{"", "www."}[r.IntN(2)], r.IntN(8)) }
	for range 1 + r.IntN(3) {
		d := fmt.Sprintf("%d.test", r.IntN(8))
		*rev++
		delete(unreadable, d)
		switch k := r.IntN(10); {
		case k < 2:
			delete(sites, d)
		case k < 3:
			delete(sites, d)
			unreadable[d] = "invalid character 'x' looking for beginning of value"
		default:
			s := state.Site{Domain: d, Revision: *rev}
			for range r.IntN(3) {
				if a := name(); a != d && !slices.Contains(s.Aliases, a) {
					s.Aliases = append(s.Aliases, a)
				}
			}
			if k == 3 {
				s.Aliases = append(s.Aliases, "-bad-.test") // does not validate
			}
			slices.Sort(s.Aliases)
			sites[d] = s
		}
	}
	// Now and then nothing clashes: the passes that follow may update the
	// owners in place.
	if r.IntN(4) == 0 {
		for d, s := range sites {
			kept := slices.DeleteFunc(slices.Clone(s.Aliases), func(a string) bool { return a != "www."+d })
			if !slices.Equal(kept, s.Aliases) {
				*rev++
				s.Aliases, s.Revision = kept, *rev
				sites[d] = s
			}
		}
		clear(unreadable)
	}
}
