package dns

import (
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/aseemu/emulator/topology"
)

// The zones the lab's DNS is authoritative for, besides each ASE's DNS
// suffix and the Azure endpoint names.
const (
	// InternetZone holds a name for every Internet host: NAME.example.net.
	// example.net is reserved for examples (RFC 2606), so it can never
	// shadow a real name.
	InternetZone = "example.net"
	// InternalZone holds a name for every VNet machine, as Azure's
	// internal DNS does: NODE.internal.cloudapp.net.
	InternalZone = "internal.cloudapp.net"
)

// azureEndpoints maps an Internet host of the lab to the Azure names it
// stands for. Another endpoint is one more line here.
var azureEndpoints = map[string][]string{
	"azure-sql":     {"sql.database.windows.net"},
	"azure-storage": {"storage.blob.core.windows.net"},
	"azure-mgmt":    {"management.azure.com"},
}

// AzureNames returns the Azure endpoint names the Internet host called host
// answers to, if it stands for an Azure endpoint.
func AzureNames(host string) []string { return slices.Clone(azureEndpoints[host]) }

// Zone is every name the lab's DNS answers, made from one topology. It does
// not change once made: a new topology makes a new Zone.
type Zone struct {
	t     *topology.Topology    // what the zone was made of
	a     map[string]netip.Addr // owner name (lower case, fully qualified) -> its A record
	apex  map[string]string     // every name that exists -> the apex of its zone
	zones []string              // the apexes, longest first
	// private holds the names, and apexes, that only a VNet's own
	// machines can resolve: an ILB ASE's apps and NODE.internal.cloudapp.net.
	// Azure DNS answers them inside their VNet alone; to anyone else they
	// do not exist (Sees).
	private map[string]*topology.VNet
	onPrem  []netip.Prefix // the on-premises network, which the VNets' gateway joins to them
	// rev holds the reverse (in-addr.arpa) names: a VNet machine's
	// address names it, and the names above that one exist, empty (RFC
	// 8020). A name can have an entry per VNet, as two VNets may use the
	// same addresses; each is seen only from its VNet (sees).
	rev map[string][]revEntry
}

// revEntry is a reverse name as one VNet sees it: with a PTR record to
// target, or, when target is "", a name that only has names below it.
type revEntry struct {
	target string
	vnet   *topology.VNet
}

// ReverseZone is the parent of every reverse name the lab answers.
const ReverseZone = "in-addr.arpa."

// NewZone makes the zone data of topology t:
//   - APP.SUFFIX and APP.scm.SUFFIX (Kudu) of every app: the ASE's VIP for an
//     External ASE (F6), its ILB address for an ILB ASE (F7);
//   - NAME.example.net of every Internet host, and the Azure names of those
//     that stand for Azure endpoints (sql.database.windows.net, ...);
//   - NODE.internal.cloudapp.net of every VNet machine: its private address;
//     and the PTR record of that address, back to the name.
//
// An ILB ASE's names and the internal.cloudapp.net names are private to
// their VNet (Sees).
func NewZone(t *topology.Topology) *Zone {
	z := &Zone{a: make(map[string]netip.Addr), apex: make(map[string]string), private: make(map[string]*topology.VNet),
		rev: make(map[string][]revEntry), t: t}
	if o := t.OnPremises; o != nil {
		z.onPrem = o.AddressSpace
	}
	apexes := map[string]bool{fqdn(InternetZone): true, fqdn(InternalZone): true}
	for _, a := range t.ASEs {
		apexes[fqdn(a.DNSSuffix)] = true
	}
	for _, names := range azureEndpoints {
		for _, n := range names {
			apexes[fqdn(n)] = true
		}
	}
	z.zones = slices.SortedFunc(maps.Keys(apexes), func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	for apex := range apexes {
		z.apex[apex] = apex
	}

	for _, a := range t.ASEs {
		var vnet *topology.VNet // an External ASE's names are public
		if a.Kind == topology.KindILB {
			vnet = a.Subnet.VNet
			z.private[fqdn(a.DNSSuffix)] = vnet
		}
		for _, ap := range a.Apps {
			z.add(ap.Name+"."+a.DNSSuffix, a.AppAddr(), vnet)
			z.add(ap.Name+".scm."+a.DNSSuffix, a.AppAddr(), vnet)
		}
	}
	for _, h := range t.Internet {
		z.add(h.Name+"."+InternetZone, h.Addr, nil)
		for _, n := range azureEndpoints[h.Name] {
			z.add(n, h.Addr, nil)
		}
	}
	for _, n := range t.Nodes {
		if n.VNet != nil {
			z.add(n.Name+"."+InternalZone, n.Addr, n.VNet)
			z.addPTR(n.Addr, n.Name+"."+InternalZone, n.VNet)
		}
	}
	return z
}

// addPTR records the PTR record of a, a machine of vnet, to name. Azure
// DNS keeps one for each VM, VMNAME.internal.cloudapp.net, which only its
// VNet sees ("Reverse DNS considerations", in "Name resolution for
// resources in Azure virtual networks",
// https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances).
// The docs speak of VMs; an ASE's instances get one too, so that every
// NODE.internal.cloudapp.net the lab answers maps back from its address.
func (z *Zone) addPTR(a netip.Addr, name string, vnet *topology.VNet) {
	owner, err := dns.ReverseAddr(a.String())
	if err != nil || !a.Is4() {
		return
	}
	for _, e := range z.rev[owner] {
		if e.vnet == vnet && e.target != "" {
			return // the first machine of an address wins, as for A records
		}
	}
	z.rev[owner] = append(z.rev[owner], revEntry{fqdn(name), vnet})
	for n := parent(owner); n != ReverseZone; n = parent(n) {
		if !slices.Contains(z.rev[n], revEntry{"", vnet}) {
			z.rev[n] = append(z.rev[n], revEntry{"", vnet})
		}
	}
}

// Reverse returns the PTR targets of reverse name (fully qualified, lower
// case) that a query from address from sees, and whether the name exists
// for it at all.
func (z *Zone) Reverse(name string, from netip.Addr) (targets []string, exists bool) {
	for _, e := range z.rev[name] {
		if z.sees(e.vnet, from) {
			exists = true
			if e.target != "" {
				targets = append(targets, e.target)
			}
		}
	}
	return targets, exists
}

// NodeAt names the lab's node at address a, "" for none: who asked, in the
// query log.
func (z *Zone) NodeAt(a netip.Addr) string {
	if n := z.t.NodeByAddr(a); n != nil {
		return n.Name
	}
	return ""
}

// add records an A record and marks its owner, and every name between it
// and its apex, as existing, so that those answer NOERROR with no data
// rather than NXDOMAIN (RFC 8020), and as private to vnet when it is not
// nil. The first record of a name wins.
func (z *Zone) add(name string, a netip.Addr, vnet *topology.VNet) {
	name = fqdn(name)
	if _, dup := z.a[name]; dup || !a.IsValid() {
		return
	}
	apex, ok := z.apexOf(name)
	if !ok {
		return
	}
	z.a[name] = a
	for n := name; n != apex; n = parent(n) {
		z.apex[n] = apex
		if vnet != nil {
			z.private[n] = vnet
		}
	}
}

// Sees reports whether a query from address from can see name (fully
// qualified, lower case): a private name only from its VNet, or from the
// on-premises network its gateway joins, as Azure DNS answers an ILB
// ASE's apps and a VNet's machine names to that VNet alone. Loopback is
// the platform's own host.
func (z *Zone) Sees(name string, from netip.Addr) bool { return z.sees(z.private[name], from) }

// sees reports whether a query from address from sees what is private to
// v: anything when v is nil.
func (z *Zone) sees(v *topology.VNet, from netip.Addr) bool {
	if v == nil || from.IsLoopback() {
		return true
	}
	for _, p := range slices.Concat(v.AddressSpace, z.onPrem) {
		if p.Contains(from) {
			return true
		}
	}
	return false
}

// Lookup returns the A record of name (any case, with or without the final
// dot).
func (z *Zone) Lookup(name string) (netip.Addr, bool) {
	a, ok := z.a[fqdn(name)]
	return a, ok
}

// Names returns every name that has an A record, sorted, fully qualified.
func (z *Zone) Names() []string { return slices.Sorted(maps.Keys(z.a)) }

// apexOf returns the apex of the zone name falls in, if any.
func (z *Zone) apexOf(name string) (string, bool) {
	for _, apex := range z.zones {
		if name == apex || strings.HasSuffix(name, "."+apex) {
			return apex, true
		}
	}
	return "", false
}

// exists reports whether name is a name of the zone data, with or without
// records of its own.
func (z *Zone) exists(name string) bool {
	_, ok := z.apex[name]
	return ok
}

func fqdn(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, ".")) + "."
}

func parent(name string) string {
	_, rest, _ := strings.Cut(name, ".")
	return rest
}
