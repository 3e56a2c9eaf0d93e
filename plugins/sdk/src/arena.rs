//! A bump allocator for rules: the global allocator of every rule built with the SDK's
//! default `arena` feature.
//!
//! A rule instance lives for one call and is then thrown away whole, so freeing memory
//! inside it is wasted work. Here an allocation is a pointer bump; freeing the most
//! recent allocation (and growing it in place, which is what a growing `String` or `Vec`
//! does) rolls the pointer back; anything else is reclaimed when the instance goes. The
//! rule's `memory-bytes-max` bounds it like any allocation: a rule that allocates without
//! end stops at its cap. Turn the feature off for a rule that frees and reallocates a lot
//! within one call.
//!
//! This module is the SDK's only unsafe code: `GlobalAlloc` is an unsafe trait.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::alloc::System;

/// Bytes taken from the system allocator at a time: small enough to fit the heap the
/// module starts with (growing linear memory costs page faults and a larger reset when
/// the instance goes back to the pool), large enough for a typical rule's whole call.
const CHUNK_BYTES: usize = 32 * 1024;

/// The allocator. A rule runs on one thread; the atomics are plain loads and stores on
/// `wasm32` and keep the code free of `static mut`.
pub struct Arena {
    next: AtomicUsize,
    end: AtomicUsize,
}

impl Arena {
    /// An arena that takes its pages from the instance's linear memory on first use.
    pub const fn new() -> Self {
        Arena {
            next: AtomicUsize::new(0),
            end: AtomicUsize::new(0),
        }
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

/// Takes a chunk of at least `bytes` from the system allocator (wasi-libc's malloc, which
/// starts in the module's own heap); its start and end, or `None`.
fn chunk(bytes: usize) -> Option<(usize, usize)> {
    let size = bytes.max(CHUNK_BYTES);
    let layout = Layout::from_size_align(size, 16).ok()?;
    // SAFETY: `layout` has a non-zero size. The chunk is never freed: the instance is
    // thrown away whole after one call.
    let start = unsafe { System.alloc(layout) } as usize;
    (start != 0).then_some((start, start + size))
}

// SAFETY: `alloc` returns a block of at least `layout.size()` bytes aligned to
// `layout.align()` that no other live allocation overlaps: blocks are carved in order from
// chunks the system allocator handed to this allocator alone (and never takes back), and
// the pointer only moves back over the most recent block when that block is freed or
// resized.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size();
        let align = layout.align();
        let mut next = self.next.load(Ordering::Relaxed);
        let mut end = self.end.load(Ordering::Relaxed);
        let mut start = next.next_multiple_of(align);
        if next == 0 || start + size > end {
            let Some((base, new_end)) = chunk(size + align) else {
                return core::ptr::null_mut();
            };
            next = base;
            end = new_end;
            start = next.next_multiple_of(align);
            self.end.store(end, Ordering::Relaxed);
        }
        self.next.store(start + size, Ordering::Relaxed);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent block can be given back.
        if ptr as usize + layout.size() == self.next.load(Ordering::Relaxed) {
            self.next.store(ptr as usize, Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        let next = self.next.load(Ordering::Relaxed);
        // The most recent block grows or shrinks in place when it fits.
        if start + layout.size() == next && start + new_size <= self.end.load(Ordering::Relaxed) {
            self.next.store(start + new_size, Ordering::Relaxed);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `layout` is valid (it came with `ptr`), and `new_size`, rounded up to
        // `layout.align()`, does not overflow, as `GlobalAlloc::realloc` requires of callers.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (it exceeds `layout.size()`).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, at least `layout.size()` long, and distinct
            // (the new one was carved after the old one).
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
        }
        new
    }
}
