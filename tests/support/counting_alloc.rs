//! A global allocator that counts allocations while `COUNTING` is on, for the no-allocation
//! tests (each in a test binary of its own: the allocator is process-wide, and tests of one
//! binary run in parallel).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct Counting;

pub static COUNTING: AtomicBool = AtomicBool::new(false);
pub static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A packet copied out of a reader, to be fed again in a second pass.
pub struct Owned {
    pub ts_ns: i64,
    pub wire_len: u32,
    pub linktype: u32,
    pub data: Vec<u8>,
}

/// Every packet of `files`, copied out of the reader (in stream order).
pub fn load(files: &[PathBuf]) -> Vec<Owned> {
    let mut reader = bittap::capture::MergedReader::new(files).expect("open");
    let mut packets = Vec::new();
    while reader.advance() {
        if let Some(p) = reader.packet() {
            packets.push(Owned {
                ts_ns: p.ts_ns,
                wire_len: p.wire_len,
                linktype: p.linktype,
                data: p.data.to_vec(),
            });
        }
    }
    packets
}
