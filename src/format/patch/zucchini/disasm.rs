//! The interface between Zucchini's reference correction and the
//! disassemblers of each executable type.
//!
//! A disassembler is made from one element's bytes (the old element, or the
//! new element after equivalences, extra data and raw deltas were applied)
//! and knows, for each reference type it defines, where references of that
//! type are and what they point to. Offsets are element-relative file
//! offsets; `target` is a file offset too (an RVA or address is translated by
//! the disassembler, which writes it back translated).
//!
//! Invariants every implementation keeps, as Zucchini's do:
//! - `groups()[i].type_tag == i`: groups are listed by type tag, from 0;
//! - `read` returns the references of one type whose `location` lies in
//!   `lo..hi`, in increasing location order, each whole reference body
//!   (`location..location + width`) inside the element;
//! - `write` changes only the `width` bytes at `r.location`, and refuses (with
//!   an error naming the type and location) a target it cannot encode;
//! - `check_range` (default: accept) refuses exactly the ranges Zucchini's
//!   reader of that type refuses; `read` is called only on accepted ranges.

use super::ZucchiniError;

/// A reference: the bytes at `location` encode a pointer to `target`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// Element-relative offset of the reference's body.
    pub location: u32,
    /// Element-relative file offset it points to.
    pub target: u32,
}

/// One reference type of a disassembler: Zucchini's `ReferenceTypeTraits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefGroup {
    /// Bytes a reference of this type occupies.
    pub width: u32,
    /// Its type tag (its index in [`Disassembler::groups`]).
    pub type_tag: u8,
    /// The target pool it shares with other types (pools are corrected
    /// together, in increasing pool tag order).
    pub pool_tag: u8,
}

/// A parsed element of one executable type.
pub trait Disassembler {
    /// Reference types, by type tag.
    fn groups(&self) -> &[RefGroup];

    /// References of type `type_tag` with `lo <= location < hi`, sorted by
    /// location. `image` is the element this disassembler was made from.
    fn read(&self, image: &[u8], type_tag: u8, lo: u32, hi: u32) -> Vec<Reference>;

    /// Encodes `r.target` into the reference of type `type_tag` at
    /// `r.location` of `image`.
    fn write(&self, image: &mut [u8], type_tag: u8, r: Reference) -> Result<(), ZucchiniError>;

    /// Whether Zucchini's reader of `type_tag` accepts `lo..hi` as a range
    /// to read (it is asked for each equivalence's source range): `Err`
    /// with the reason where Zucchini stops (its abs32 reader refuses a
    /// bound that cuts a reference body). The default accepts every range.
    fn check_range(&self, type_tag: u8, lo: u32, hi: u32) -> Result<(), String> {
        let _ = (type_tag, lo, hi);
        Ok(())
    }
}

/// The disassembler of raw (`NoOp`) elements: no references.
#[derive(Debug, Default)]
pub struct NoOp;

impl Disassembler for NoOp {
    fn groups(&self) -> &[RefGroup] {
        &[]
    }

    fn read(&self, _image: &[u8], _type_tag: u8, _lo: u32, _hi: u32) -> Vec<Reference> {
        Vec::new()
    }

    fn write(&self, _image: &mut [u8], type_tag: u8, r: Reference) -> Result<(), ZucchiniError> {
        Err(ZucchiniError::BadReference {
            type_tag,
            location: r.location,
            reason: "a raw element has no references".into(),
        })
    }
}
