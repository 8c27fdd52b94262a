package timebox

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Identity is a person who signed in through the OpenID Connect provider. People need not be
// listed in the configuration: an identity is a user whose groups come from the provider's
// groups claim (mapped to Timebox groups) at their last sign-in. A configuration user of the
// same name adds to it (db_user, on-call names, more groups).
type Identity struct {
	// Name is the Timebox user name, taken from the provider's username claim at the first
	// sign-in and bound to Issuer and Subject from then on.
	Name        string    `json:"name"`
	Issuer      string    `json:"issuer"`
	Subject     string    `json:"subject"`
	Email       string    `json:"email,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Groups      []string  `json:"groups,omitempty"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSignIn  time.Time `json:"last_sign_in"`
}

// Directory holds the identities that signed in, so that Catalog.User finds people the
// configuration does not list. It is safe for concurrent use. The service keeps it in step
// with the store: it loads it at start (Service.LoadDirectory) and updates it at each
// sign-in; a replica that has not seen a sign-in finds it at its next load.
type Directory struct {
	mu    sync.RWMutex
	byKey map[string]*Identity // by Name
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory { return &Directory{byKey: map[string]*Identity{}} }

// Put adds or replaces id (by name).
func (d *Directory) Put(id *Identity) {
	cp := *id
	cp.Groups = slices.Clone(id.Groups)
	d.mu.Lock()
	d.byKey[id.Name] = &cp
	d.mu.Unlock()
}

// Replace sets the directory's identities to ids.
func (d *Directory) Replace(ids []*Identity) {
	m := make(map[string]*Identity, len(ids))
	for _, id := range ids {
		cp := *id
		cp.Groups = slices.Clone(id.Groups)
		m[id.Name] = &cp
	}
	d.mu.Lock()
	d.byKey = m
	d.mu.Unlock()
}

// Get returns a copy of the named identity, or nil.
func (d *Directory) Get(name string) *Identity {
	if d == nil {
		return nil
	}
	d.mu.RLock()
	id := d.byKey[name]
	d.mu.RUnlock()
	if id == nil {
		return nil
	}
	cp := *id
	cp.Groups = slices.Clone(id.Groups)
	return &cp
}

// All returns copies of every identity, by name.
func (d *Directory) All() []*Identity {
	if d == nil {
		return nil
	}
	d.mu.RLock()
	out := make([]*Identity, 0, len(d.byKey))
	for _, id := range d.byKey {
		cp := *id
		cp.Groups = slices.Clone(id.Groups)
		out = append(out, &cp)
	}
	d.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// mergeIdentity returns the user that identity id (may be nil) and configuration user cu
// (may be nil) make together: the configuration's fields first, the provider's groups added.
func mergeIdentity(cu *User, id *Identity) *User {
	if id == nil {
		return cu
	}
	u := &User{Name: id.Name, Email: id.Email}
	if cu != nil {
		cp := *cu
		u = &cp
		u.Groups = slices.Clone(cu.Groups)
		if u.Email == "" {
			u.Email = id.Email
		}
	}
	for _, g := range id.Groups {
		if !slices.Contains(u.Groups, g) {
			u.Groups = append(u.Groups, g)
		}
	}
	return u
}

// People returns every user: the configuration's, in its order (merged with their
// identities), then the identities only the provider knows, by name. Callers must not change the users.
func (c *Catalog) People() []*User {
	out := make([]*User, 0, len(c.Users))
	seen := map[string]bool{}
	for i := range c.Users {
		cu := &c.Users[i]
		out = append(out, mergeIdentity(cu, c.Directory.Get(cu.Name)))
		seen[cu.Name] = true
	}
	for _, id := range c.Directory.All() {
		if !seen[id.Name] {
			out = append(out, mergeIdentity(nil, id))
		}
	}
	return out
}

// NormalizeUserName turns a provider's username claim into a Timebox user name (lower case,
// trimmed). EINVALID when the result is not a valid user name or is reserved.
func NormalizeUserName(claim string) (string, error) {
	name := strings.ToLower(strings.TrimSpace(claim))
	if err := checkUserName(name); err != nil {
		return "", Errorf(EINVALID, "the provider's username %q is not a valid Timebox user name: %s", Clip(claim), err.Error())
	}
	if reservedActors[name] {
		return "", Errorf(EINVALID, "the provider's username %q is reserved for Timebox's own audit events", Clip(claim))
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return unicode.Is(unicode.Cf, r) }); i >= 0 {
		// Zero-width and bidi characters would let a name look like another person's.
		return "", Errorf(EINVALID, "the provider's username %q has an invisible character (%U), which would make it look like another name", Clip(claim), []rune(name[i:])[0])
	}
	return name, nil
}
