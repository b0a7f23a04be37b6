//! The allocator a policy gets on WebAssembly: a bump arena sized for one decision.
//!
//! By default the host runs every `decide` (and every `validate-config` and `on-outcome`) in a
//! fresh instance and throws it away afterwards, so nothing a policy allocates needs to be
//! reused: allocating is a pointer bump and freeing is a no-op (except that freeing or growing
//! the newest allocation works in place). The arena counts its live allocations and starts over
//! when the last one is freed, which happens between two calls when a tenant opts into a warm
//! instance (`sandbox.instance = "warm"`, docs/security-model.md) and the policy keeps nothing on the
//! heap between calls. The arena is a zeroed `static`, so it sits inside the instance's initial linear memory:
//! a decision that fits never executes `memory.grow`. That matters more than the allocator's own
//! speed: with a general-purpose allocator every decision grew memory, which cost the host an
//! `mprotect` while the decision ran and another, with a TLB shootdown on every core, when the
//! pooled instance slot was reset. Allocations that do not fit go to the system allocator
//! (`dlmalloc`), so a policy that needs more memory still gets it, within the host's limits.
//!
//! Turn it off with `default-features = false` to use the standard allocator, or to install your
//! own `#[global_allocator]`.
//!
//! The only `unsafe` in the SDK outside the generated bindings: an allocator cannot be written
//! without it. The tests below exercise every path natively.

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use std::alloc::System;

/// Arena size. A typical decision (the summary, a parsed config, the decision) takes tens of KiB.
pub const ARENA_BYTES: usize = 256 << 10;

#[repr(C, align(16))]
struct Storage(UnsafeCell<[u8; ARENA_BYTES]>);

/// A bump allocator over a fixed arena, falling back to [`System`] when the arena is full.
pub struct OneShotArena {
    storage: Storage,
    /// Offset of the first free byte in `storage`.
    next: Cell<usize>,
    /// Allocations in the arena not freed yet; when it falls to zero the arena starts over.
    live: Cell<usize>,
}

// SAFETY: only where there are no threads: on wasm32 without the `atomics` target feature
// (threads need it), an instance runs on one thread, and the host never calls into one instance
// from two threads. Anywhere else the arena is not `Sync`, so it cannot be installed as a global
// allocator or shared, and its `Cell` cannot race.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl Sync for OneShotArena {}

impl OneShotArena {
    /// An empty arena (usable in a `static`).
    pub const fn new() -> Self {
        OneShotArena {
            storage: Storage(UnsafeCell::new([0; ARENA_BYTES])),
            next: Cell::new(0),
            live: Cell::new(0),
        }
    }

    fn base(&self) -> *mut u8 {
        self.storage.0.get().cast()
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let start = self.base() as usize;
        (start..start + ARENA_BYTES).contains(&(ptr as usize))
    }

    /// Reserves `layout` in the arena, or returns null when it does not fit.
    fn bump(&self, layout: Layout) -> *mut u8 {
        let base = self.base() as usize;
        let Some(start) = (base + self.next.get()).checked_next_multiple_of(layout.align()) else {
            return core::ptr::null_mut();
        };
        let end = start - base + layout.size();
        if end > ARENA_BYTES {
            return core::ptr::null_mut();
        }
        self.next.set(end);
        self.live.set(self.live.get() + 1);
        // Derive the pointer from the arena's own so it keeps the arena's provenance.
        self.base().wrapping_add(start - base)
    }

    /// Whether `ptr..ptr + size` is the newest allocation (it ends at the bump pointer).
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.base() as usize + self.next.get()
    }
}

impl Default for OneShotArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every pointer handed out is either inside the arena, aligned to the layout and not
// overlapping a live allocation (the bump pointer only moves back over the newest allocation
// when it is freed), or comes from `System` and goes back to it.
unsafe impl GlobalAlloc for OneShotArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = self.bump(layout);
        if ptr.is_null() {
            // SAFETY: forwarded unchanged.
            unsafe { System.alloc(layout) }
        } else {
            ptr
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.contains(ptr) {
            let live = self.live.get().saturating_sub(1);
            self.live.set(live);
            if live == 0 {
                self.next.set(0);
            } else if self.is_last(ptr, layout.size()) {
                self.next.set(ptr as usize - self.base() as usize);
            }
        } else {
            // SAFETY: not in the arena, so `System` allocated it.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.contains(ptr) {
            // The newest allocation grows or shrinks in place while it fits (the common case:
            // a `String` or `Vec` being built).
            let offset = ptr as usize - self.base() as usize;
            if self.is_last(ptr, layout.size()) && offset + new_size <= ARENA_BYTES {
                self.next.set(offset + new_size);
                return ptr;
            }
            if new_size <= layout.size() {
                return ptr;
            }
            // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: as `GlobalAlloc::alloc`.
            let new = unsafe { self.alloc(new_layout) };
            if !new.is_null() {
                // SAFETY: both regions are live, distinct, and at least `layout.size()` long.
                unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
                // SAFETY: `ptr` is in the arena and no longer used (its contents were moved).
                unsafe { self.dealloc(ptr, layout) };
            }
            new
        } else {
            // SAFETY: not in the arena, so `System` allocated it.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Natively (threads exist) the arena must not be shareable between threads.
    static_assertions::assert_not_impl_any!(OneShotArena: Sync);

    /// A heap-allocated arena: building one on a test thread's stack would overflow it.
    fn fresh() -> Box<OneShotArena> {
        // SAFETY: all-zero bytes are a valid empty arena (zeroed storage, `next` and `live` = 0).
        unsafe { Box::from_raw(std::alloc::alloc_zeroed(Layout::new::<OneShotArena>()).cast()) }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let arena = fresh();
        unsafe {
            let a = arena.alloc(layout(3, 1));
            let b = arena.alloc(layout(8, 8));
            let c = arena.alloc(layout(1, 16));
            assert!(arena.contains(a) && arena.contains(b) && arena.contains(c));
            assert_eq!(b as usize % 8, 0);
            assert_eq!(c as usize % 16, 0);
            assert!(b as usize >= a as usize + 3);
            assert!(c as usize >= b as usize + 8);
        }
    }

    #[test]
    fn the_arena_starts_over_once_everything_in_it_is_freed() {
        let arena = fresh();
        unsafe {
            let a = arena.alloc(layout(1000, 8));
            let b = arena.alloc(layout(10, 1));
            let grown = arena.realloc(a, layout(1000, 8), 2000);
            assert_ne!(grown, a, "not the newest: moved");
            arena.dealloc(b, layout(10, 1));
            assert!(arena.next.get() > 0, "one allocation is still live");
            arena.dealloc(grown, layout(2000, 8));
            assert_eq!((arena.next.get(), arena.live.get()), (0, 0));
            assert_eq!(arena.alloc(layout(1000, 8)), a, "the same space again");
        }
    }

    #[test]
    fn freeing_the_newest_allocation_reuses_its_space() {
        let arena = fresh();
        unsafe {
            let a = arena.alloc(layout(100, 4));
            arena.dealloc(a, layout(100, 4));
            let b = arena.alloc(layout(100, 4));
            assert_eq!(a, b);
            // An older allocation freed out of order is just dropped.
            let c = arena.alloc(layout(10, 1));
            arena.dealloc(b, layout(100, 4));
            let d = arena.alloc(layout(10, 1));
            assert!(d as usize >= c as usize + 10);
        }
    }

    #[test]
    fn growing_the_newest_allocation_stays_in_place_and_keeps_contents() {
        let arena = fresh();
        unsafe {
            let a = arena.alloc(layout(4, 1));
            a.copy_from(b"abcd".as_ptr(), 4);
            let grown = arena.realloc(a, layout(4, 1), 4096);
            assert_eq!(grown, a);
            // Not the newest any more: growing it moves and copies.
            let _other = arena.alloc(layout(1, 1));
            let moved = arena.realloc(grown, layout(4096, 1), 8192);
            assert_ne!(moved, grown);
            assert_eq!(core::slice::from_raw_parts(moved, 4), b"abcd");
        }
    }

    #[test]
    fn overflow_goes_to_the_system_allocator() {
        let arena = fresh();
        unsafe {
            let big = arena.alloc(layout(ARENA_BYTES + 1, 8));
            assert!(!big.is_null());
            assert!(!arena.contains(big));
            big.write_bytes(7, ARENA_BYTES + 1);
            arena.dealloc(big, layout(ARENA_BYTES + 1, 8));
            // The arena is still empty and usable.
            let small = arena.alloc(layout(16, 8));
            assert!(arena.contains(small));
            // Growing an arena block past the arena moves it to the system allocator.
            small.write_bytes(9, 16);
            let moved = arena.realloc(small, layout(16, 8), ARENA_BYTES * 2);
            assert!(!moved.is_null() && !arena.contains(moved));
            assert_eq!(*moved.add(15), 9);
            arena.dealloc(moved, layout(ARENA_BYTES * 2, 8));
        }
    }
}
