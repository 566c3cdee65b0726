//! LP metadata whose extents cover the metadata region or run past the
//! super device, in a fastboot package. The metadata is written with valid
//! checksums by romkit's own writer, so only the layout is wrong.

use romkit::format::lp::{self, Metadata, PartitionSpec, SuperSpec};

use crate::harness::{Case, Expect, INVALID};
use crate::zipraw;

fn spec() -> SuperSpec {
    SuperSpec {
        device_size: 8 << 20,
        groups: vec![("main".into(), 4 << 20)],
        partitions: ["system_a", "vendor_a"]
            .iter()
            .map(|n| PartitionSpec {
                name: n.to_string(),
                group: "main".into(),
                attributes: lp::ATTR_READONLY,
                size: 1 << 20,
            })
            .collect(),
        ..Default::default()
    }
}

/// A fastboot zip holding `images/super.img` (raw, data all zeros) with `m`.
fn package(m: &Metadata) -> Vec<u8> {
    let mut area = m.metadata_area().unwrap();
    area.resize(8 << 20, 0);
    zipraw::build(&[
        zipraw::stored("images/boot.img", &[0x42; 8192]),
        zipraw::stored("images/super.img", &area),
    ])
}

#[test]
fn extents_over_metadata_or_past_the_device() {
    let good = spec().build().unwrap();
    // The unbent package is read without complaint.
    let case = Case::new("lp unbent", "fb.zip", &package(&good));
    case.check(&["verify", "IN"], Expect::Ok);
    case.check(&["unpack", "IN", "-o", "OUT"], Expect::Ok);

    type Edit = Box<dyn Fn(&mut Metadata)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "extent over the metadata region",
            Box::new(|m: &mut Metadata| m.extents[0].target_data = 8),
        ),
        (
            "extent at sector 0",
            Box::new(|m: &mut Metadata| m.extents[0].target_data = 0),
        ),
        (
            "extent past the end of super",
            Box::new(|m: &mut Metadata| m.extents[1].target_data = (8 << 20) / 512 - 100),
        ),
        (
            "extent of 2^60 sectors",
            Box::new(|m: &mut Metadata| m.extents[1].num_sectors = 1 << 60),
        ),
        (
            "extent end overflowing",
            Box::new(|m: &mut Metadata| {
                m.extents[1].target_data = u64::MAX - 4;
                m.extents[1].num_sectors = 8;
            }),
        ),
        (
            "block device larger than the image",
            Box::new(|m: &mut Metadata| m.block_devices[0].size = 1 << 50),
        ),
    ];
    for (what, edit) in cases {
        let mut m = good.clone();
        edit(&mut m);
        let case = Case::new(&format!("lp {what}"), "fb.zip", &package(&m));
        // Exit 3 and the message names the super image.
        case.check_package(Expect::Fail(INVALID, "images/super.img"));
    }
}
