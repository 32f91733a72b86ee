// Package syncer keeps consumers (the node agent's dataplane and BGP code) in
// step with the datastore: it lists each kind, hands the snapshot over, says
// once when every kind is in sync, then follows each kind with a watch from
// its list revision.
//
// When a watch breaks or its history is compacted, or a list fails, it backs
// off (100 ms doubling to 5 s) and lists again, delivering only the
// difference from what the consumer already has. Consumers never see a flush
// and refill, so a datastore hiccup does not make them tear anything down.
//
// It owns the list/watch/resync loop and the per-kind record of what the
// consumer was told (keys and resource versions, not the resources). It must
// not interpret resources or do consumers' work on its goroutines.
package syncer
