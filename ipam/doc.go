// Package ipam is Tabby's block-affinity IP address manager, Calico's
// calico-ipam algorithm on top of datastore.Interface.
//
// It owns the IPAM records (IPAMBlock, BlockAffinity, IPAMHandle and the
// "default" IPAMConfiguration) and reads IPPool, Node and WorkloadEndpoint.
// It does no other I/O: no files, no kernel, no network besides the
// datastore, and no global state. Routes for blocks are someone else's job
// (BlocksForNode tells them what a node owns).
//
// # Model
//
// A pool is cut into blocks (/26 and /122 by default). A node claims blocks
// and hands out addresses from them; an IPAMBlock holds the bitmap
// (allocations[i] = index into attributes, or null), the FIFO queue of free
// ordinals (unallocated: a freed address goes to the tail, so it is reused
// last), the attributes (handle + namespace/pod/node/timestamp) and a
// sequence number that grows with every write. Each allocation records the
// block's sequence number at the time it was made, so a release that names
// the sequence number it saw cannot free a later allocation of the same
// address. An IPAMHandle counts, per block, the addresses one handle
// (k8s-pod-network.<containerID> for pods) holds: it is the index that makes
// ReleaseByHandle cheap.
//
// # Invariants
//
// The IPAMBlock record is the only truth about which addresses are taken and
// which node owns the block. Addresses are only taken by a compare-and-swap
// update of that record, and a block is only created by Create, which fails
// when the record exists: so an address can never be handed out twice, and
// two nodes can never own one block, whatever the interleaving. Affinities
// and handles are indexes over the blocks; the orderings below make sure
// that a crash at any point leaves them describing a superset of the truth
// (never a subset), which the next call or `ipam check` repairs.
//
// # Write ordering (what a crash between two steps leaves behind)
//
// Claiming a block for node N (two-phase, as Calico):
//  1. create BlockAffinity "<N>-<block>" state pending (if it exists and is
//     not confirmed, CAS it back to pending);
//  2. create the IPAMBlock with affinity host:N. If it already exists and is
//     affine to N (a concurrent claim from the same node), use it; if it is
//     someone else's, the claim is lost: delete our pending affinity and pick
//     the next block;
//  3. CAS the affinity to confirmed.
//
// Crash after 1: a pending affinity without a block. It is not ownership
// (BlocksForNode and routing ignore pending affinities). N's next AutoAssign
// walks its affinities, finds the block missing and finishes the claim; if
// another node has created the block meanwhile, the stale affinity is
// deleted. Crash after 2: the block exists, affine to N, affinity still
// pending: N's next AutoAssign confirms it before allocating from it.
//
// Allocating addresses in a block:
//  1. add the addresses to the handle's count for the block (create the
//     IPAMHandle if needed);
//  2. CAS-update the block. On a conflict, undo step 1 and retry from a
//     fresh read.
//
// Crash after 1: the handle over-counts. ReleaseByHandle still finds every
// address (it releases what the block says and drops counts for blocks that
// hold none), and `ipam check` reports the handle. The reverse order could
// leave an address no handle points to, which only a full scan would find.
//
// Releasing addresses: CAS-update the block (or CAS-delete it when it is now
// empty and has no affinity), then decrement the handle. A crash in between
// again leaves an over-counting handle.
//
// Releasing a node's affinity for a block (ReleaseHostAffinities, as
// Calico): CAS the affinity to pendingDeletion; CAS-delete the block if it
// is empty, otherwise CAS it to no affinity (its addresses stay allocated and
// become "borrowed"); CAS-delete the affinity. A pendingDeletion affinity is
// not ownership; calling ReleaseHostAffinities again finishes the job.
//
// Every read-modify-write retries on a revision conflict up to 100 times
// (Calico's datastoreRetries), re-reading each time, with a short jittered
// pause so concurrent writers spread out. A request that cannot be met in
// full releases what it took before it returns the error, so a failure never
// leaves a partial allocation behind.
//
// Within one IPAM value, AutoAssign and AssignIP for the same node are
// serialised (as Calico's CNI plugin does with a host lock): it only avoids
// pointless revision conflicts; correctness never depends on it, and any
// number of processes may allocate for the same node at once.
//
// # Speed (none of it changes the rules above)
//
//   - Group commit (batch.go): AutoAssign requests of one node that arrive
//     while a block write is in flight queue, and the next leader writes
//     them together: their handles in parallel, then one compare-and-swap
//     of the block taking an address for each. A request that does not fit
//     goes the one-request way.
//   - Block cache (cache.go): each IPAM value remembers the last stored
//     version of the blocks it read or wrote, and AutoAssign starts from the
//     node's cached blocks with room instead of listing every affinity and
//     reading every block of the node. The cache is only ever a starting
//     point for a compare-and-swap: a stale copy fails it and is read
//     again; ownership, stale affinities and the decision to claim a new
//     block still come from reads.
//   - The node, the pools and the configuration are read in parallel, before
//     the request queues; meanwhile the handle is counted for the block the
//     request will most likely get (handle before block still holds; a wrong
//     guess is taken back). A new handle is created without reading it
//     first.
//   - A lost compare-and-swap keeps the handle's count for the next attempt
//     on the same block, and a block write that fails for another reason
//     (the write may have happened) keeps it too: over-counting is the safe
//     side.
//
// # Differences from Calico
//
//   - Block CIDRs are claimed from each pool in address order (Calico walks
//     them from a random start seeded by the hostname); borrowing visits
//     existing blocks from a start derived from the node name.
//   - maxBlocksPerHost 0 means unlimited (current Calico caps at 20), and a
//     node at its cap borrows unless strictAffinity is set (Calico refuses
//     to combine the two and fails the request).
//   - Explicitly requested pools must exist, be enabled and select the node
//     (Calico ignores the node selector for requested pools).
//   - namespaceSelector is not evaluated (namespace labels are not in the
//     Calico v3 API this package reads).
package ipam
