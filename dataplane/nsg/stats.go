package nsg

import (
	"slices"
	"strings"

	"github.com/aseemu/emulator/topology"
)

// NSGStats is one NSG as `emulator status` shows it.
type NSGStats struct {
	Name    string      `json:"name"`
	Subnets []string    `json:"subnets,omitempty"` // subnets it is attached to
	NICs    []string    `json:"nics,omitempty"`    // nodes whose NIC it is attached to
	VNets   []string    `json:"vnets,omitempty"`   // VNets it is compiled for (F11)
	Rules   []RuleStats `json:"rules"`             // inbound then outbound, each in evaluation order
}

// RuleStats is one rule with its hit counter: the number of Checks it
// decided, over every node and VNet the NSG is attached in.
type RuleStats struct {
	Name                  string   `json:"name"`
	Priority              int      `json:"priority"`
	Direction             string   `json:"direction"`
	Access                string   `json:"access"`
	Protocol              string   `json:"protocol"`
	SourcePrefixes        []string `json:"sourceAddressPrefixes"`
	SourcePortRanges      []string `json:"sourcePortRanges"`
	DestinationPrefixes   []string `json:"destinationAddressPrefixes"`
	DestinationPortRanges []string `json:"destinationPortRanges"`
	Default               bool     `json:"default"` // one of the F10 default rules
	Hits                  uint64   `json:"hits"`
}

// Stats lists every NSG of the lab, in file order, with its rules and their
// hit counters. Counters are read atomically one by one, so a snapshot
// taken while traffic flows is not one instant.
func (s *Set) Stats() []NSGStats {
	out := make([]NSGStats, 0, len(s.nsgs))
	for _, st := range s.nsgs {
		ns := NSGStats{Name: st.name, Subnets: slices.Clone(st.subnets), NICs: slices.Clone(st.nics)}
		for v := range st.tables {
			ns.VNets = append(ns.VNets, v.Name)
		}
		slices.Sort(ns.VNets)
		for _, rs := range st.dirs {
			for i := range rs.rules {
				ri := &rs.rules[i]
				ns.Rules = append(ns.Rules, RuleStats{
					Name:                  ri.Name,
					Priority:              ri.Priority,
					Direction:             rs.dir.String(),
					Access:                ri.src.Access,
					Protocol:              ri.src.Protocol,
					SourcePrefixes:        slices.Clone(ri.src.SourcePrefixes),
					SourcePortRanges:      portStrings(ri.src.SourcePorts),
					DestinationPrefixes:   slices.Clone(ri.src.DestinationPrefixes),
					DestinationPortRanges: portStrings(ri.src.DestinationPorts),
					Default:               ri.Default,
					Hits:                  rs.hits[i].Load(),
				})
			}
		}
		out = append(out, ns)
	}
	return out
}

func portStrings(ps []topology.PortRange) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// Hits returns the hit counter of the named rule (names in any case), and
// whether the Set has such a rule.
func (s *Set) Hits(nsg string, dir Direction, rule string) (uint64, bool) {
	st := s.byNSG[strings.ToLower(nsg)]
	if st == nil || dir > Outbound {
		return 0, false
	}
	rs := st.dirs[dir]
	for i := range rs.rules {
		if strings.EqualFold(rs.rules[i].Name, rule) {
			return rs.hits[i].Load(), true
		}
	}
	return 0, false
}

// InheritHits adds old's hit counters to s's, rule by rule, matching NSG,
// direction and rule names (in any case), so that `emulator status` keeps
// counting across `emulator apply`. Call it on the new Set before the
// dataplane swaps it in; hits old takes after the call are not carried.
//
// A rule whose access changed starts from zero: its hits were decisions
// of the other kind, and the metrics label them with the access
// (emulator_nsg_rule_hits_total{access="Deny"}), so carried over they
// would count Allows as Denies.
func (s *Set) InheritHits(old *Set) {
	if old == nil {
		return
	}
	type prior struct {
		access string
		hits   uint64
	}
	for _, st := range s.nsgs {
		ost := old.byNSG[strings.ToLower(st.name)]
		if ost == nil {
			continue
		}
		for dir, rs := range st.dirs {
			ors := ost.dirs[dir]
			prev := make(map[string]prior, len(ors.rules))
			for i := range ors.rules {
				prev[strings.ToLower(ors.rules[i].Name)] = prior{ors.rules[i].src.Access, ors.hits[i].Load()}
			}
			for i := range rs.rules {
				p := prev[strings.ToLower(rs.rules[i].Name)]
				if p.hits > 0 && strings.EqualFold(p.access, rs.rules[i].src.Access) {
					rs.hits[i].Add(p.hits)
				}
			}
		}
	}
}
