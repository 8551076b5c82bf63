//! The browser package's memory allocator: power-of-two size classes with a free list each.
//!
//! The standard library's allocator for wasm32 (dlmalloc) is the largest single piece of code in
//! a size-budgeted package. A page holds a client's working set (frames, records, tables) and
//! little else, so a simpler scheme does: every block is a power of two from 16 bytes up, a
//! freed block goes on its size's free list for the next allocation of that size, and new
//! blocks are carved from memory grown in 64 KiB pages.
//!
//! - **Alignment:** a carved block is aligned to its own size (up to a page), so any layout
//!   whose alignment is at most its rounded size is satisfied. To get there without waste, the
//!   bytes skipped to align a block are themselves carved into blocks and put on their free
//!   lists.
//! - **Growth:** when the carving region runs out, memory grows by the pages needed. Memory is
//!   never returned (wasm memory cannot shrink), and freed blocks are reused only for their own
//!   size class: the high-water mark of each size class stays reserved. Rounding up to a power
//!   of two can take up to twice the memory asked for.
//! - **Threads:** wasm32 without atomics runs one thread, which is what makes the unsynchronised
//!   state sound; the allocator is only installed there.

#![allow(unsafe_code)]

use std::alloc::Layout;
use std::ptr;

/// Where new memory comes from: `grow(pages)` adds `pages` pages of 64 KiB and answers the
/// address they start at, or `None` when memory cannot grow.
pub(crate) trait Grow {
    fn grow(&mut self, pages: usize) -> Option<usize>;
}

const PAGE: usize = 64 * 1024;
/// The smallest block: room for the free list's link on any target.
const MIN_SHIFT: u32 = 4;
/// Size classes 16 B .. 2 GiB.
const CLASSES: usize = 28;

/// The allocator's state.
pub(crate) struct Classes<G> {
    /// The first free block of each class; each free block starts with the address of the next.
    free: [usize; CLASSES],
    /// The carving region: `next..end` is grown memory not yet handed out.
    next: usize,
    end: usize,
    memory: G,
}

/// The class of a layout: the index of the power of two that holds it, aligned.
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    let rounded = size.checked_next_power_of_two()?;
    let class = (rounded.trailing_zeros() - MIN_SHIFT) as usize;
    (class < CLASSES).then_some(class)
}

fn block_size(class: usize) -> usize {
    1 << (class as u32 + MIN_SHIFT)
}

impl<G: Grow> Classes<G> {
    pub(crate) const fn new(memory: G) -> Self {
        Classes { free: [0; CLASSES], next: 0, end: 0, memory }
    }

    /// A block for `layout`, or null when memory is exhausted.
    ///
    /// # Safety
    /// `layout` has a non-zero size; the state is not used concurrently.
    pub(crate) unsafe fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            return ptr::null_mut();
        };
        let head = self.free[class];
        if head != 0 {
            // SAFETY: a free block holds the address of the next one in its first word.
            self.free[class] = unsafe { (head as *const usize).read() };
            return head as *mut u8;
        }
        self.carve(class).map_or(ptr::null_mut(), |at| at as *mut u8)
    }

    /// Returns a block to its class's free list.
    ///
    /// # Safety
    /// `block` came from [`Classes::alloc`] (or `realloc`) with this `layout` and is not used
    /// after this.
    pub(crate) unsafe fn dealloc(&mut self, block: *mut u8, layout: Layout) {
        if let Some(class) = class(layout) {
            self.push(class, block as usize);
        }
    }

    /// Resizes a block: the same block while the new size stays in its class, else a new block
    /// with the contents copied.
    ///
    /// # Safety
    /// As [`Classes::dealloc`] for `block` and `layout`; `new_size` is not zero.
    pub(crate) unsafe fn realloc(
        &mut self,
        block: *mut u8,
        layout: Layout,
        new_size: usize,
    ) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        if class(new_layout).is_some() && class(new_layout) == class(layout) {
            return block;
        }
        // SAFETY: the new layout has a non-zero size.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks hold at least the smaller size and are distinct (`block` is
            // still allocated).
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }

    fn push(&mut self, class: usize, block: usize) {
        // SAFETY: every block is at least 16 bytes and aligned for a usize.
        unsafe { (block as *mut usize).write(self.free[class]) };
        self.free[class] = block;
    }

    /// A new block of `class` from the carving region, growing memory when it is short.
    fn carve(&mut self, class: usize) -> Option<usize> {
        let size = block_size(class);
        let align = size.min(PAGE);
        if self.next.checked_next_multiple_of(align)?.checked_add(size)? > self.end {
            let pages = size.div_ceil(PAGE) + 1;
            let start = self.memory.grow(pages)?;
            if start != self.end {
                // Memory grew somewhere else: what was left of the old region is given up.
                self.next = start;
            }
            self.end = start + pages * PAGE;
        }
        // Align by carving the skipped bytes into the largest blocks they allow.
        while !self.next.is_multiple_of(align) {
            let step: usize = 1 << self.next.trailing_zeros();
            let class = (step.trailing_zeros() - MIN_SHIFT) as usize;
            self.push(class, self.next);
            self.next += step;
        }
        let block = self.next;
        self.next += size;
        Some(block)
    }
}

#[cfg(all(target_arch = "wasm32", feature = "wasm"))]
mod global {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::UnsafeCell;

    use super::{Classes, Grow, PAGE};

    struct Memory;

    impl Grow for Memory {
        fn grow(&mut self, pages: usize) -> Option<usize> {
            let previous = core::arch::wasm32::memory_grow(0, pages);
            (previous != usize::MAX).then(|| previous * PAGE)
        }
    }

    struct Allocator(UnsafeCell<Classes<Memory>>);

    // SAFETY: wasm32 without the atomics feature has one thread.
    unsafe impl Sync for Allocator {}

    unsafe impl GlobalAlloc for Allocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: one thread, and the allocator never calls back into itself.
            unsafe { (*self.0.get()).alloc(layout) }
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            // SAFETY: as in `alloc`; the caller's contract is the same as `Classes::dealloc`.
            unsafe { (*self.0.get()).dealloc(block, layout) }
        }

        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: as in `alloc`; the caller's contract is the same as `Classes::realloc`.
            unsafe { (*self.0.get()).realloc(block, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Allocator = Allocator(UnsafeCell::new(Classes::new(Memory)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pages handed out from a fixed arena, as wasm memory would grow.
    struct Arena {
        memory: Vec<u8>,
        base: usize,
        used: usize,
    }

    impl Arena {
        fn new(pages: usize) -> Self {
            let memory = vec![0u8; (pages + 1) * PAGE];
            let base = (memory.as_ptr() as usize).next_multiple_of(PAGE);
            Arena { memory, base, used: 0 }
        }
    }

    impl Grow for Arena {
        fn grow(&mut self, pages: usize) -> Option<usize> {
            let start = self.base + self.used * PAGE;
            if start + pages * PAGE > self.memory.as_ptr() as usize + self.memory.len() {
                return None;
            }
            self.used += pages;
            Some(start)
        }
    }

    struct Live {
        at: *mut u8,
        layout: Layout,
        fill: u8,
    }

    fn check(block: &Live) {
        // SAFETY: the block is allocated with this layout and was filled with `fill`.
        let bytes = unsafe { std::slice::from_raw_parts(block.at, block.layout.size()) };
        assert!(bytes.iter().all(|&b| b == block.fill), "block contents changed");
    }

    fn fill(block: &Live) {
        // SAFETY: the block is allocated with this layout.
        unsafe { ptr::write_bytes(block.at, block.fill, block.layout.size()) };
    }

    /// Random allocations, frees and resizes of many sizes and alignments: every block is
    /// aligned, and no block's contents are disturbed by any other operation.
    #[test]
    fn blocks_should_be_aligned_and_never_overlap() {
        let mut seed = 0x853c_49e6_748f_ea9b_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut heap = Classes::new(Arena::new(2048));
        let mut live: Vec<Live> = Vec::new();
        for step in 0..40_000u32 {
            let roll = next() % 10;
            if roll < 4 || live.is_empty() {
                let size = match next() % 10 {
                    0 => 1 + (next() % 200_000) as usize,
                    1..=3 => 1 + (next() % 4096) as usize,
                    _ => 1 + (next() % 64) as usize,
                };
                let align = 1 << (next() % 8);
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero size.
                let at = unsafe { heap.alloc(layout) };
                assert!(!at.is_null(), "arena exhausted at step {step}");
                assert!((at as usize).is_multiple_of(align), "misaligned block");
                let block = Live { at, layout, fill: step as u8 };
                fill(&block);
                live.push(block);
            } else if roll < 8 {
                let block = live.swap_remove((next() % live.len() as u64) as usize);
                check(&block);
                // SAFETY: allocated with this layout, dropped from `live`.
                unsafe { heap.dealloc(block.at, block.layout) };
            } else {
                let i = (next() % live.len() as u64) as usize;
                check(&live[i]);
                let new_size = 1 + (next() % 8192) as usize;
                let old = &live[i];
                // SAFETY: allocated with this layout; replaced in `live` below.
                let at = unsafe { heap.realloc(old.at, old.layout, new_size) };
                assert!(!at.is_null());
                let kept = old.layout.size().min(new_size);
                // SAFETY: the block holds at least `kept` bytes of the old contents.
                let bytes = unsafe { std::slice::from_raw_parts(at, kept) };
                assert!(bytes.iter().all(|&b| b == old.fill), "realloc lost contents");
                let layout = Layout::from_size_align(new_size, old.layout.align()).unwrap();
                assert!((at as usize).is_multiple_of(layout.align()));
                live[i] = Live { at, layout, fill: old.fill.wrapping_add(1) };
                fill(&live[i]);
            }
        }
        for block in &live {
            check(block);
        }
    }

    #[test]
    fn a_freed_block_should_be_reused_for_the_same_class() {
        let mut heap = Classes::new(Arena::new(4));
        let layout = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: non-zero sizes; each block is freed once.
        unsafe {
            let a = heap.alloc(layout);
            heap.dealloc(a, layout);
            assert_eq!(heap.alloc(Layout::from_size_align(128, 4).unwrap()), a);
        }
    }

    #[test]
    fn exhausted_memory_and_impossible_sizes_should_give_null() {
        let mut heap = Classes::new(Arena::new(2));
        // SAFETY: non-zero sizes.
        unsafe {
            assert!(heap.alloc(Layout::from_size_align(10 * PAGE, 8).unwrap()).is_null());
            assert!(heap.alloc(Layout::from_size_align(usize::MAX / 2, 1).unwrap()).is_null());
            assert!(!heap.alloc(Layout::from_size_align(64, 8).unwrap()).is_null());
        }
    }
}
