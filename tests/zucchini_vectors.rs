//! Zucchini reference-correction building blocks against the concrete
//! inputs and expected outputs of Chromium's own unit tests
//! (components/zucchini/*_unittest.cc); each test names its source.

use romkit::format::patch::zucchini::Equivalence;
use romkit::format::patch::zucchini::elf::{
    ELF_X64, ELF_X86, ExecSection, abs32_gaps, is_offset_in_sections, quick_detect,
    scan_rel32_intel,
};
use romkit::format::patch::zucchini::offset_mapper::{
    OFFSET_BOUND, OffsetMapper, prune_and_sort_by_source,
};
use romkit::format::patch::zucchini::target_pool::TargetPool;

fn eq(src: u32, dst: u32, length: u32) -> Equivalence {
    Equivalence { src, dst, length }
}

fn eqs(v: &[(u32, u32, u32)]) -> Vec<Equivalence> {
    v.iter().map(|&(s, d, l)| eq(s, d, l)).collect()
}

/// target_pool_unittest.cc, TargetPoolTest.InsertTargetsFromReferences.
#[test]
fn target_pool_insert_targets() {
    let insert = |targets: &[u32]| {
        let mut p = TargetPool::default();
        p.insert(targets.iter().copied());
        p.targets().to_vec()
    };
    assert_eq!(insert(&[]), Vec::<u32>::new());
    assert_eq!(insert(&[0, 1]), [0, 1]);
    assert_eq!(insert(&[1, 0]), [0, 1]);
    assert_eq!(insert(&[1, 0, 2]), [0, 1, 2]);
    assert_eq!(insert(&[0, 0]), [0]);
    assert_eq!(insert(&[0, 0, 1]), [0, 1]);
}

/// target_pool_unittest.cc, TargetPoolTest.KeyOffset.
#[test]
fn target_pool_key_for_nearest_offset() {
    let cases: [(&str, &[u32]); 9] = [
        ("0000000000000000", &[]),
        ("0000000000000000", &[0]),
        ("0000000000000000", &[1]),
        ("0111111111111111", &[0, 1]),
        ("0011111111111111", &[0, 2]),
        ("0011111111111111", &[1, 2]),
        ("0001111111111111", &[1, 3]),
        ("0001112223334444", &[1, 3, 7, 9, 13]),
        ("0000011112223333", &[1, 7, 9, 13]),
    ];
    for (keys, targets) in cases {
        let pool = TargetPool::from_sorted(targets.to_vec());
        for (k, &t) in targets.iter().enumerate() {
            assert_eq!(pool.offset_for_key(k as u32), Some(t));
        }
        for (offset, c) in keys.bytes().enumerate() {
            assert_eq!(
                pool.key_for_nearest_offset(offset as u32),
                (c - b'0') as u32,
                "{targets:?} offset {offset}"
            );
        }
    }
}

/// equivalence_map_unittest.cc, EquivalenceMapTest.PruneEquivalencesAndSortBySource
/// (the current, major version 2, tie-break).
#[test]
fn prune_equivalences_and_sort_by_source() {
    let prune = |v: &[(u32, u32, u32)]| {
        let mut e = eqs(v);
        prune_and_sort_by_source(&mut e, 2);
        e.iter()
            .map(|e| (e.src, e.dst, e.length))
            .collect::<Vec<_>>()
    };
    assert_eq!(prune(&[]), []);
    assert_eq!(prune(&[(0, 10, 1)]), [(0, 10, 1)]);
    assert_eq!(prune(&[(0, 10, 0)]), []);
    assert_eq!(prune(&[(0, 10, 1), (1, 11, 1)]), [(0, 10, 1), (1, 11, 1)]);
    assert_eq!(prune(&[(0, 10, 2), (1, 12, 2)]), [(0, 10, 2), (2, 13, 1)]);
    assert_eq!(prune(&[(0, 10, 2), (1, 12, 1)]), [(0, 10, 2)]);
    assert_eq!(prune(&[(0, 10, 2), (1, 13, 2)]), [(0, 10, 2), (2, 14, 1)]);
    assert_eq!(prune(&[(0, 10, 2), (1, 12, 3)]), [(0, 10, 1), (1, 12, 3)]);
    assert_eq!(
        prune(&[(0, 10, 3), (1, 13, 3), (3, 16, 2)]),
        [(0, 10, 3), (3, 16, 2)]
    );
    // crbug.com/1432457.
    assert_eq!(
        prune(&[(0, 10, 6), (3, 20, 5), (3, 30, 1)]),
        [(0, 10, 6), (6, 23, 2)]
    );
    // The O(n^2) pattern.
    let mut big = vec![(0, 10, 300000)];
    big.extend((0..100000u32).map(|i| (200000 + i, 20, 200000 - 2 * i)));
    big.push((300000, 30, 300000));
    assert_eq!(prune(&big), [(0, 10, 300000), (300000, 30, 300000)]);
    // Sorting stability when equivalences share src_offset: every order.
    let base = [(0, 10, 2), (0, 19, 2), (0, 24, 2), (0, 26, 2)];
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                if a == b || a == c || b == c {
                    continue;
                }
                let d = 6 - a - b - c;
                let order = [base[a], base[b], base[c], base[d]];
                assert_eq!(prune(&order), [(0, 10, 2)], "{order:?}");
            }
        }
    }
}

/// Major version 1 sorts by source offset only (this port: stably, in patch
/// order); overlap resolution is the same as in version 2 (the first two
/// cases above, which have no ties, give the same results).
#[test]
fn prune_major_version_1_keeps_patch_order_on_ties() {
    let mut e = eqs(&[(0, 19, 2), (0, 10, 2)]);
    prune_and_sort_by_source(&mut e, 1);
    assert_eq!(e, eqs(&[(0, 19, 2)]));
    let mut e = eqs(&[(0, 10, 2), (1, 12, 2)]);
    prune_and_sort_by_source(&mut e, 1);
    assert_eq!(e, eqs(&[(0, 10, 2), (2, 13, 1)]));
}

/// equivalence_map_unittest.cc, EquivalenceMapTest.NaiveExtendedForwardProject.
#[test]
fn naive_extended_forward_project() {
    let m = OffsetMapper::from_pruned(Vec::new(), 1000, 1000);
    let stay = eq(10, 10, 5);
    for o in 0..1000 {
        assert_eq!(m.naive_extended_forward_project(&stay, o), o);
    }
    for o in [1000, 2000, OFFSET_BOUND - 1] {
        assert_eq!(m.naive_extended_forward_project(&stay, o), 999);
    }
    let dec = eq(20, 10, 12);
    let cases_dec = [
        (20, 10),
        (21, 11),
        (31, 21),
        (19, 9),
        (11, 1),
        (10, 0),
        (9, 0),
        (5, 0),
        (0, 0),
        (30, 20),
        (74, 64),
        (100, 90),
        (500, 490),
        (1009, 999),
        (1010, 999),
        (2000, 999),
        (OFFSET_BOUND - 1, 999),
    ];
    for (o, want) in cases_dec {
        assert_eq!(m.naive_extended_forward_project(&dec, o), want, "dec {o}");
    }
    let inc = eq(7, 17, 80);
    let cases_inc = [
        (7, 17),
        (50, 60),
        (86, 96),
        (6, 16),
        (0, 10),
        (87, 97),
        (500, 510),
        (989, 999),
        (990, 999),
        (2000, 999),
        (OFFSET_BOUND - 1, 999),
    ];
    for (o, want) in cases_inc {
        assert_eq!(m.naive_extended_forward_project(&inc, o), want, "inc {o}");
    }
}

/// equivalence_map_unittest.cc, EquivalenceMapTest.ExtendedForwardProject.
#[test]
fn extended_forward_project() {
    let m1 = OffsetMapper::from_pruned(eqs(&[(0, 10, 2), (2, 13, 1), (4, 16, 2)]), 20, 25);
    for (o, want) in [
        (0, 10),
        (1, 11),
        (2, 13),
        (3, 14),
        (4, 16),
        (5, 17),
        (6, 18),
        (20, 25),
        (21, 26),
        (1000, 1005),
        (OFFSET_BOUND - 1, OFFSET_BOUND - 1),
    ] {
        assert_eq!(m1.extended_forward_project(o), want, "mapper1 {o}");
    }
    let m2 = OffsetMapper::from_pruned(eqs(&[(0, 10, 2), (13, 2, 1), (16, 4, 2)]), 25, 20);
    for (o, want) in [
        (0, 10),
        (1, 11),
        (13, 2),
        (14, 3),
        (16, 4),
        (17, 5),
        (18, 6),
        (25, 20),
        (26, 21),
        (1000, 995),
        (OFFSET_BOUND - 1, OFFSET_BOUND - 1 - 5),
    ] {
        assert_eq!(m2.extended_forward_project(o), want, "mapper2 {o}");
    }
}

/// equivalence_map_unittest.cc, EquivalenceMapTest.ExtendedForwardProjectEncoding:
/// the test's own spec strings, decoded by the same rules (upper/lower case
/// letters: expected new offsets in order; '<' clamps to 0, '>' to the last
/// new offset; '(' ... ')' repeats one new offset; '.' unused).
#[test]
fn extended_forward_project_encoding() {
    let run = |e: &[(u32, u32, u32)], old_spec: &str, new_spec: &str| {
        let mut expected: std::collections::BTreeMap<char, std::collections::VecDeque<u32>> =
            Default::default();
        let (mut cur, mut stay) = (0u32, false);
        for ch in new_spec.chars() {
            match ch {
                '(' => stay = true,
                ')' => stay = false,
                _ => expected.entry(ch).or_default().push_back(cur),
            }
            if !stay {
                cur += 1;
            }
        }
        let new_size = cur;
        let m = OffsetMapper::from_pruned(eqs(e), old_spec.len() as u32, new_size);
        for (o, ch) in old_spec.chars().enumerate() {
            let got = m.extended_forward_project(o as u32);
            let want = match ch {
                '<' => 0,
                '>' => new_size - 1,
                _ => expected.get_mut(&ch).unwrap().pop_front().unwrap(),
            };
            assert_eq!(got, want, "{old_spec} offset {o}");
        }
        expected.remove(&'.');
        assert!(expected.values().all(|q| q.is_empty()), "{old_spec}");
    };
    run(&[(5, 5, 4)], "aaaaaAAAAaaaaa", "aaaaaAAAAaaaaa");
    run(&[(0, 6, 4), (4, 0, 6)], "AAAABBBBBB", "BBBBBBAAAA");
    run(&[(0, 2, 4), (4, 3, 6)], "AAAABBBBBB", "..A(AB)(AB)(AB)BBB.");
    run(&[(1, 2, 2), (7, 6, 1)], "aAAaabbBbb", ".aAA(ab)(ab)Bbb.");
    run(&[(1, 2, 2), (8, 7, 1)], "aAAaaabbBb", ".aAAa(ab)(ab)Bb.");
    run(&[(6, 2, 2)], "<<<<aaAAaa", "aaAAaa....");
    run(&[(2, 6, 3)], "aaAAAa>>>>", "....aaAAAa");
    run(&[(3, 1, 2), (7, 9, 2)], "<<aAAabBBb>>", "aAAa....bBBb");
    run(
        &[(0, 7, 2), (9, 9, 2), (18, 11, 2)],
        "AAaaaabbbBBbbbbcccCC",
        "......b(Ab)(Abc)(Bac)(Bac)(Cab)(Cab)bb.....",
    );
    run(
        &[(7, 0, 2), (9, 9, 2), (11, 18, 2)],
        "<<<<<<<AABBCC>>>>>>>",
        "AA.......BB.......CC",
    );
    run(
        &[(3, 10, 1), (10, 17, 1), (17, 3, 1)],
        "aaaAaaabbbBbbbcccCccc",
        "cccCcccaaaAaaabbbBbbb",
    );
    run(
        &[(2, 10, 2), (12, 3, 4)],
        "aaAAaa>><bbbBBBBbb",
        "bbbBBBBb(ab)aAAaa",
    );
    run(
        &[(6, 3, 2), (10, 11, 1), (14, 16, 3)],
        "<<<aaaAAabBbbcCCCc>>>>>",
        "aaaAAa....bBbb.cCCCc",
    );
    run(
        &[
            (1, 0, 1),
            (5, 10, 1),
            (6, 3, 2),
            (11, 12, 2),
            (14, 6, 2),
            (17, 17, 1),
        ],
        "<AaabBCCccdDDdEEeFf>",
        "AaaCCc(Ec)EebBdDDd..Ff",
    );
}

/// equivalence_map_unittest.cc, EquivalenceMapTest.ForwardProjectAll.
#[test]
fn forward_project_all() {
    let project = |m: &OffsetMapper, v: &[u32]| {
        let mut v = v.to_vec();
        m.forward_project_all(&mut v);
        v
    };
    let m1 = OffsetMapper::from_pruned(eqs(&[(0, 10, 2), (2, 13, 1), (4, 16, 2)]), 100, 100);
    assert_eq!(project(&m1, &[0]), [10]);
    assert_eq!(project(&m1, &[2]), [13]);
    assert_eq!(project(&m1, &[3]), Vec::<u32>::new());
    assert_eq!(project(&m1, &[0, 2]), [10, 13]);
    assert_eq!(project(&m1, &[1, 2, 5]), [11, 13, 17]);
    assert_eq!(project(&m1, &[1, 3, 5]), [11, 17]);
    assert_eq!(project(&m1, &[0, 1, 2, 3, 4, 5, 6]), [10, 11, 13, 16, 17]);
    let m2 = OffsetMapper::from_pruned(eqs(&[(0, 10, 2), (13, 2, 1), (16, 4, 2)]), 100, 100);
    // The single-offset form agrees on the same inputs.
    for (m, inputs) in [
        (&m1, [0u32, 1, 2, 3, 4, 5, 6]),
        (&m2, [0, 1, 13, 14, 16, 17, 18]),
    ] {
        let single: Vec<u32> = inputs
            .iter()
            .filter_map(|&o| m.forward_project(o))
            .collect();
        assert_eq!(single, project(m, &inputs));
    }
    assert_eq!(project(&m2, &[13]), [2]);
    assert_eq!(project(&m2, &[0, 13]), [10, 2]);
    assert_eq!(project(&m2, &[1, 13, 17]), [11, 2, 5]);
    assert_eq!(project(&m2, &[1, 14, 17]), [11, 5]);
    assert_eq!(project(&m2, &[0, 1, 13, 14, 16, 17, 18]), [10, 11, 2, 4, 5]);
}

/// rel32_finder_unittest.cc, Abs32GapFinderTest.All.
#[test]
fn abs32_gap_finder() {
    let run = |lo: u32, hi: u32, locs: &[u32], w: u32| {
        abs32_gaps(lo, hi, locs, w)
            .iter()
            .map(|(a, b)| format!("[{a},{b})"))
            .collect::<String>()
    };
    let cases: &[(u32, u32, &[u32], u32, &str)] = &[
        (0, 0, &[], 4, ""),
        (9, 9, &[], 4, ""),
        (8, 8, &[8], 4, ""),
        (8, 8, &[0, 12], 4, ""),
        (0, 99, &[], 4, "[0,99)"),
        (20, 21, &[], 4, "[20,21)"),
        (51, 55, &[], 4, "[51,55)"),
        (10, 20, &[5], 4, "[10,20)"),
        (10, 20, &[6], 4, "[10,20)"),
        (10, 20, &[7], 4, "[11,20)"),
        (10, 20, &[8], 4, "[12,20)"),
        (10, 20, &[9], 4, "[13,20)"),
        (10, 20, &[10], 4, "[14,20)"),
        (10, 20, &[11], 4, "[10,11)[15,20)"),
        (10, 20, &[15], 4, "[10,15)[19,20)"),
        (10, 20, &[16], 4, "[10,16)"),
        (10, 20, &[17], 4, "[10,17)"),
        (10, 20, &[18], 4, "[10,18)"),
        (10, 20, &[19], 4, "[10,19)"),
        (10, 20, &[20], 4, "[10,20)"),
        (10, 20, &[21], 4, "[10,20)"),
        (10, 11, &[7], 4, ""),
        (10, 11, &[8], 4, ""),
        (10, 11, &[9], 4, ""),
        (10, 11, &[10], 4, ""),
        (10, 12, &[8], 4, ""),
        (10, 12, &[9], 4, ""),
        (10, 12, &[10], 4, ""),
        (10, 13, &[9], 4, ""),
        (10, 13, &[10], 4, ""),
        (10, 14, &[10], 4, ""),
        (10, 14, &[8, 12], 4, ""),
        (20, 25, &[20], 4, "[24,25)"),
        (20, 25, &[21], 4, "[20,21)"),
        (20, 26, &[21], 4, "[20,21)[25,26)"),
        (40, 60, &[36, 60], 4, "[40,60)"),
        (41, 61, &[0, 10, 20, 30, 34, 62, 68, 80], 4, "[41,61)"),
        (10, 20, &[9, 11, 14, 15, 19], 1, "[10,11)[12,14)[16,19)"),
        (10, 11, &[10], 1, ""),
        (17, 31, &[15, 23, 26, 31], 3, "[18,23)[29,31)"),
        (17, 31, &[14, 22, 26, 30], 3, "[17,22)[25,26)[29,30)"),
        (10, 20, &[11], 8, "[10,11)[19,20)"),
        (8, 25, &[2, 6, 15, 20, 27], 4, "[10,15)[19,20)[24,25)"),
        (0, 50, &[25, 45], 4, "[0,25)[29,45)[49,50)"),
        (10, 50, &[20, 24], 4, "[10,20)[28,50)"),
        (
            49,
            87,
            &[10, 20, 30, 40, 50, 60, 70, 80, 90],
            4,
            "[49,50)[54,60)[64,70)[74,80)[84,87)",
        ),
        (0, 50, &[10, 20, 25], 4, "[0,10)[14,20)[24,25)[29,50)"),
    ];
    for &(lo, hi, locs, w, want) in cases {
        assert_eq!(run(lo, hi, locs, w), want, "{lo}..{hi} {locs:?} width {w}");
    }
}

/// rel32_finder_unittest.cc: kDataX86 (abs32 bodies at kAbs32X86, width 4).
const DATA_X86: [u8; 0x6F] = [
    0x55, 0x8B, 0xEC, 0xE8, 0, 0, 0, 0, 0xE9, 0, 0, 0, 0, 0x0F, 0x80, 0, 0, 0, 0, 0x0F, 0x81, 0, 0,
    0, 0, 0x0F, 0x82, 0, 0, 0, 0, 0x0F, 0x83, 0, 0, 0, 0, 0x0F, 0x84, 0, 0, 0, 0, 0x0F, 0x85, 0, 0,
    0, 0, 0x0F, 0x86, 0, 0, 0, 0, 0x0F, 0x87, 0, 0, 0, 0, 0x0F, 0x88, 0, 0, 0, 0, 0x0F, 0x89, 0, 0,
    0, 0, 0x0F, 0x8A, 0, 0, 0, 0, 0x0F, 0x8B, 0, 0, 0, 0, 0x0F, 0x8C, 0, 0, 0, 0, 0x0F, 0x8D, 0, 0,
    0, 0, 0x0F, 0x8E, 0, 0, 0, 0, 0x0F, 0x8F, 0, 0, 0, 0, 0x5D, 0xC3,
];
const ABS32_X86: [u32; 8] = [0x08, 0x17, 0x26, 0x2A, 0x40, 0x51, 0x5F, 0x63];

/// The finder over `data` with a trivial translator, accepting every
/// candidate, over the abs32 gaps: (location, target RVA, can point outside).
fn integrated(data: &[u8], abs32: &[u32], width: u32, x64: bool) -> Vec<(u32, u32, bool)> {
    let mut out = Vec::new();
    for (lo, hi) in abs32_gaps(0, data.len() as u32, abs32, width) {
        scan_rel32_intel(
            data,
            lo,
            hi,
            x64,
            |o| o,
            |c| {
                out.push((c.location, c.target_rva, c.can_point_outside_section));
                true
            },
        );
    }
    out
}

/// rel32_finder_unittest.cc, Rel32FinderX86Test.FindNext (locations, with
/// every candidate accepted and no abs32 gaps).
#[test]
fn rel32_finder_x86_find_next() {
    let got = integrated(&DATA_X86, &[], 4, false);
    let want: Vec<(u32, u32, bool)> = [
        0x04, 0x09, 0x0F, 0x15, 0x1B, 0x21, 0x27, 0x2D, 0x33, 0x39, 0x3F, 0x45, 0x4B, 0x51, 0x57,
        0x5D, 0x63, 0x69,
    ]
    .iter()
    .map(|&l| (l, l + 4, false))
    .collect();
    assert_eq!(got, want);
}

/// rel32_finder_unittest.cc, Rel32FinderX86Test.Integrated.
#[test]
fn rel32_finder_x86_integrated() {
    let got: Vec<(u32, u32)> = integrated(&DATA_X86, &ABS32_X86, 4, false)
        .iter()
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(
        got,
        [
            (0x04, 0x08),
            (0x0F, 0x13),
            (0x21, 0x25),
            (0x33, 0x37),
            (0x39, 0x3D),
            (0x4B, 0x4F),
            (0x57, 0x5B),
            (0x69, 0x6D)
        ]
    );
}

/// rel32_finder_unittest.cc, Rel32FinderX86Test.Accept.
#[test]
fn rel32_finder_x86_accept() {
    let data = [
        0xB9, 0x00, 0x00, 0x00, 0xE9, 0xE8, 0x00, 0x00, 0x00, 0xE9, 0xE8, 0x00, 0x00, 0x00, 0xE9,
    ];
    let mut seen = Vec::new();
    scan_rel32_intel(
        &data,
        0,
        data.len() as u32,
        false,
        |o| o,
        |c| {
            seen.push(c.location);
            // Accept the first (a false positive that shadows 0x06), reject the
            // second, after which 0x0B is found.
            seen.len() == 1
        },
    );
    assert_eq!(seen, [0x05, 0x0A, 0x0B]);
}

/// rel32_finder_unittest.cc: kDataX64 (abs32 bodies at kAbs32X64, width 8).
const DATA_X64: [u8; 0xE7] = [
    0x55, 0x8B, 0xEC, 0xE8, 0, 0, 0, 0, 0xE9, 0, 0, 0, 0, 0x0F, 0x80, 0, 0, 0, 0, 0x0F, 0x81, 0, 0,
    0, 0, 0x0F, 0x82, 0, 0, 0, 0, 0x0F, 0x83, 0, 0, 0, 0, 0x0F, 0x84, 0, 0, 0, 0, 0x0F, 0x85, 0, 0,
    0, 0, 0x0F, 0x86, 0, 0, 0, 0, 0x0F, 0x87, 0, 0, 0, 0, 0x0F, 0x88, 0, 0, 0, 0, 0x0F, 0x89, 0, 0,
    0, 0, 0x0F, 0x8A, 0, 0, 0, 0, 0x0F, 0x8B, 0, 0, 0, 0, 0x0F, 0x8C, 0, 0, 0, 0, 0x0F, 0x8D, 0, 0,
    0, 0, 0x0F, 0x8E, 0, 0, 0, 0, 0x0F, 0x8F, 0, 0, 0, 0, 0xFF, 0x15, 0, 0, 0, 0, 0xFF, 0x25, 0, 0,
    0, 0, 0x8B, 0x05, 0, 0, 0, 0, 0x8B, 0x3D, 0, 0, 0, 0, 0x8D, 0x05, 0, 0, 0, 0, 0x8D, 0x3D, 0, 0,
    0, 0, 0x48, 0x8B, 0x05, 0, 0, 0, 0, 0x48, 0x8B, 0x3D, 0, 0, 0, 0, 0x48, 0x8D, 0x05, 0, 0, 0, 0,
    0x48, 0x8D, 0x3D, 0, 0, 0, 0, 0x4C, 0x8B, 0x05, 0, 0, 0, 0, 0x4C, 0x8B, 0x3D, 0, 0, 0, 0, 0x4C,
    0x8D, 0x05, 0, 0, 0, 0, 0x4C, 0x8D, 0x3D, 0, 0, 0, 0, 0x66, 0x8B, 0x05, 0, 0, 0, 0, 0x66, 0x8B,
    0x3D, 0, 0, 0, 0, 0x66, 0x8D, 0x05, 0, 0, 0, 0, 0x66, 0x8D, 0x3D, 0, 0, 0, 0, 0x5D, 0xC3,
];
const ABS32_X64: [u32; 9] = [0x0C, 0x1F, 0x33, 0x3B, 0x49, 0x6A, 0x99, 0xB3, 0xCC];

/// rel32_finder_unittest.cc, Rel32FinderX64Test.FindNext.
#[test]
fn rel32_finder_x64_find_next() {
    let got = integrated(&DATA_X64, &[], 8, true);
    let jumps = [
        0x04, 0x09, 0x0F, 0x15, 0x1B, 0x21, 0x27, 0x2D, 0x33, 0x39, 0x3F, 0x45, 0x4B, 0x51, 0x57,
        0x5D, 0x63, 0x69,
    ];
    let rip = [
        0x6F, 0x75, 0x7B, 0x81, 0x87, 0x8D, 0x94, 0x9B, 0xA2, 0xA9, 0xB0, 0xB7, 0xBE, 0xC5, 0xCC,
        0xD3, 0xDA, 0xE1,
    ];
    let want: Vec<(u32, u32, bool)> = jumps
        .iter()
        .map(|&l| (l, l + 4, false))
        .chain(rip.iter().map(|&l| (l, l + 4, true)))
        .collect();
    assert_eq!(got, want);
}

/// rel32_finder_unittest.cc, Rel32FinderX64Test.Integrated.
#[test]
fn rel32_finder_x64_integrated() {
    let got: Vec<(u32, u32)> = integrated(&DATA_X64, &ABS32_X64, 8, true)
        .iter()
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(
        got,
        [
            (0x04, 0x08),
            (0x1B, 0x1F),
            (0x2D, 0x31),
            (0x45, 0x49),
            (0x57, 0x5B),
            (0x5D, 0x61),
            (0x63, 0x67),
            (0x75, 0x79),
            (0x7B, 0x7F),
            (0x81, 0x85),
            (0x87, 0x8B),
            (0x8D, 0x91),
            (0x94, 0x98),
            (0xA9, 0xAD),
            (0xBE, 0xC2),
            (0xC5, 0xC9),
            (0xDA, 0xDE),
            (0xE1, 0xE5)
        ]
    );
}

/// disassembler_elf_unittest.cc, DisassemblerElfTest.IsTargetOffsetInElfSectionList.
#[test]
fn is_target_offset_in_elf_section_list() {
    let run = |list: &[(u32, u32)], lo: u32, hi: u32| {
        let s: Vec<ExecSection> = list
            .iter()
            .map(|&(offset, size)| ExecSection {
                offset,
                size,
                addr: 0,
            })
            .collect();
        (lo..hi)
            .map(|o| {
                if is_offset_in_sections(&s, o) {
                    '*'
                } else {
                    '.'
                }
            })
            .collect::<String>()
    };
    type Case<'a> = (&'a [(u32, u32)], u32, u32, &'a str);
    let cases: &[Case] = &[
        (&[], 0, 10, ".........."),
        (&[(0, 1)], 0, 10, "*........."),
        (&[(3, 1)], 0, 10, "...*......"),
        (&[(3, 4)], 0, 10, "...****..."),
        (&[(10003, 4)], 10000, 10010, "...****..."),
        (&[(3, 4), (7, 4)], 0, 14, "...********..."),
        (&[(3, 4), (8, 4)], 0, 15, "...****.****..."),
        (&[(3, 4), (9, 4)], 0, 16, "...****..****..."),
        (&[(2, 4), (9, 5)], 0, 16, "..****...*****.."),
        (&[(3, 3), (12, 3)], 0, 17, "...***......***.."),
        (
            &[
                (2, 2),
                (5, 2),
                (8, 1),
                (10, 1),
                (14, 1),
                (16, 1),
                (18, 2),
                (23, 2),
                (26, 1),
                (28, 2),
                (31, 1),
            ],
            0,
            34,
            "..**.**.*.*...*.*.**...**.*.**.*..",
        ),
        (
            &[(137, 5), (143, 4), (148, 3), (152, 2), (155, 1)],
            135,
            158,
            "..*****.****.***.**.*..",
        ),
        (
            &[(137, 5), (142, 4), (146, 3), (149, 2), (151, 1)],
            135,
            154,
            "..***************..",
        ),
        (
            &[(2002, 31)],
            2000,
            2035,
            "..*******************************..",
        ),
        (
            &[(5002, 32)],
            5000,
            5036,
            "..********************************..",
        ),
        (
            &[(8002, 33)],
            8000,
            8037,
            "..*********************************..",
        ),
        (
            &[(9876543, 8), (9876551, 9), (9876561, 11)],
            9876541,
            9876574,
            "..*****************.***********..",
        ),
        (
            &[(100, 1000000)],
            5000,
            5050,
            "**************************************************",
        ),
        (
            &[(100, 1000000)],
            75,
            125,
            ".........................*************************",
        ),
        (
            &[(100, 1000000)],
            1000075,
            1000125,
            "*************************.........................",
        ),
        (&[(1000000000, 1)], 999999995, 1000000006, ".....*....."),
    ];
    for &(list, lo, hi, want) in cases {
        assert_eq!(run(list, lo, hi), want, "{list:?}");
    }
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// disassembler_elf_unittest.cc, DisassemblerElfTest.QuickDetect (without
/// its random-bytes case).
#[test]
fn elf_quick_detect() {
    let both = |img: &[u8]| {
        (
            quick_detect(img, ELF_X86).is_ok(),
            quick_detect(img, ELF_X64).is_ok(),
        )
    };
    assert_eq!(both(&[]), (false, false));
    assert_eq!(both(&hex("DE AD")), (false, false));
    assert_eq!(both(&hex("7F 45 4C 46")), (false, false));
    assert_eq!(
        both(&hex("7F 45 4C 46 01 01 01 00 00 00 00 00 00 00 00 00")),
        (false, false)
    );
    assert_eq!(both(&[0; 52]), (false, false));
    // Typical x86 header: ET_EXEC, EM_386, e_version 1, e_shentsize 40.
    let mut h32 = hex("7F 45 4C 46 01 01 01 00 00 00 00 00 00 00 00 00");
    h32.resize(52, 0);
    h32[16] = 2;
    h32[18] = 3;
    h32[20] = 1;
    h32[46] = 40;
    assert_eq!(both(&h32), (true, false));
    // Typical x64 header: ET_EXEC, EM_X86_64, e_version 1, e_shentsize 64.
    let mut h64 = hex("7F 45 4C 46 02 01 01 00 00 00 00 00 00 00 00 00");
    h64.resize(64, 0);
    h64[16] = 2;
    h64[18] = 62;
    h64[20] = 1;
    h64[58] = 64;
    assert_eq!(both(&h64), (false, true));
}

// ---- address_translator_unittest.cc ------------------------------------------

use romkit::format::patch::zucchini::address_translator::{
    AddressTranslator, INVALID_RVA, TranslatorError, Unit,
};
use romkit::format::patch::zucchini::offset_mapper::INVALID_OFFSET;

fn unit(offset_begin: u32, offset_size: u32, rva_begin: u32, rva_size: u32) -> Unit {
    Unit {
        offset_begin,
        offset_size,
        rva_begin,
        rva_size,
    }
}

/// The test's `InitializeWithStrings` notation: "offsets|rvas", each part's
/// begin is its first character other than '.', its size the number of
/// characters other than '.' and '!'.
fn spec_unit(s: &str) -> Unit {
    let (o, r) = s.split_once('|').unwrap();
    let begin = |t: &str| t.find(|c| c != '.').unwrap_or(t.len()) as u32;
    let size = |t: &str| t.chars().filter(|&c| c != '.' && c != '!').count() as u32;
    unit(begin(o), size(o), begin(r), size(r))
}

fn init(specs: &[&str]) -> Result<AddressTranslator, TranslatorError> {
    AddressTranslator::new(specs.iter().map(|s| spec_unit(s)).collect())
}

/// address_translator_unittest.cc, AddressTranslatorTest.Empty.
#[test]
fn translator_empty() {
    let t = AddressTranslator::new(Vec::new()).unwrap();
    for v in [0, 100] {
        assert_eq!(t.offset_to_rva(v), INVALID_RVA);
        assert_eq!(t.rva_to_offset(v), INVALID_OFFSET);
    }
    assert_eq!(t.offset_to_rva(t.fake_offset_begin()), INVALID_RVA);
}

/// address_translator_unittest.cc, AddressTranslatorTest.Single and
/// SingleDanglingRva.
#[test]
fn translator_single() {
    let t = AddressTranslator::new(vec![unit(10, 20, 100, 20)]).unwrap();
    assert_eq!(t.fake_offset_begin(), 30);
    for (o, r) in [
        (0, INVALID_RVA),
        (9, INVALID_RVA),
        (10, 100),
        (20, 110),
        (29, 119),
        (30, INVALID_RVA),
    ] {
        assert_eq!(t.offset_to_rva(o), r, "offset {o}");
    }
    for (r, o) in [
        (0, INVALID_OFFSET),
        (99, INVALID_OFFSET),
        (100, 10),
        (110, 20),
        (119, 29),
        (120, INVALID_OFFSET),
    ] {
        assert_eq!(t.rva_to_offset(r), o, "rva {r}");
    }
    let t = AddressTranslator::new(vec![unit(10, 20, 100, 27)]).unwrap();
    let f = t.fake_offset_begin();
    assert_eq!(f, 30);
    for (o, r) in [
        (0, INVALID_RVA),
        (9, INVALID_RVA),
        (10, 100),
        (20, 110),
        (29, 119),
        (30, INVALID_RVA),
        (f + 100, INVALID_RVA),
        (f + 119, INVALID_RVA),
        (f + 120, 120),
        (f + 126, 126),
        (f + 127, INVALID_RVA),
    ] {
        assert_eq!(t.offset_to_rva(o), r, "offset {o}");
    }
    for (r, o) in [
        (0, INVALID_OFFSET),
        (99, INVALID_OFFSET),
        (100, 10),
        (110, 20),
        (119, 29),
        (120, f + 120),
        (126, f + 126),
        (127, INVALID_OFFSET),
    ] {
        assert_eq!(t.rva_to_offset(r), o, "rva {r}");
    }
}

/// address_translator_unittest.cc, AddressTranslatorTest.BasicUsage.
#[test]
fn translator_basic_usage() {
    let t = AddressTranslator::new(vec![
        unit(10, 20, 200, 25),
        unit(40, 30, 300, 20),
        unit(50, 20, 310, 20),
        unit(70, 40, 100, 20),
        unit(90, 20, 120, 20),
    ])
    .unwrap();
    let f = t.fake_offset_begin();
    assert_eq!(f, 110);
    for (o, r) in [
        (0, INVALID_RVA),
        (9, INVALID_RVA),
        (10, 200),
        (20, 210),
        (29, 219),
        (30, INVALID_RVA),
        (39, INVALID_RVA),
        (40, 300),
        (55, 315),
        (69, 329),
        (70, 100),
        (90, 120),
        (109, 139),
        (110, INVALID_RVA),
        (f + 220, 220),
        (f + 224, 224),
        (f + 225, INVALID_RVA),
    ] {
        assert_eq!(t.offset_to_rva(o), r, "offset {o}");
    }
    for (r, o) in [
        (0, INVALID_OFFSET),
        (99, INVALID_OFFSET),
        (100, 70),
        (120, 90),
        (139, 109),
        (140, INVALID_OFFSET),
        (199, INVALID_OFFSET),
        (200, 10),
        (210, 20),
        (219, 29),
        (225, INVALID_OFFSET),
        (299, INVALID_OFFSET),
        (300, 40),
        (315, 55),
        (329, 69),
        (330, INVALID_OFFSET),
        (220, f + 220),
        (224, f + 224),
    ] {
        assert_eq!(t.rva_to_offset(r), o, "rva {r}");
    }
}

/// address_translator_unittest.cc, AddressTranslatorTest.Overflow.
#[test]
fn translator_overflow() {
    let err = |u: Vec<Unit>| AddressTranslator::new(u).err();
    assert_eq!(
        err(vec![unit(0, 0xC000_0000, 0, 0xC000_0000)]),
        Some(TranslatorError::Overflow)
    );
    assert_eq!(
        err(vec![unit(0, 0, 0, 0xC000_0000)]),
        Some(TranslatorError::Overflow)
    );
    assert_eq!(
        err(vec![
            unit(32, 0, 32, 0x5000_0000),
            unit(0x5000_0000, 16, 0, 16)
        ]),
        Some(TranslatorError::FakeOffsetBeginTooLarge)
    );
}

/// address_translator_unittest.cc, AddressTranslatorTest.AddUnitAsString.
#[test]
fn translator_unit_strings() {
    let t = init(&["..A..|.aaa."]).unwrap();
    assert_eq!(t.units_sorted_by_offset()[0], unit(2, 1, 1, 3));
    let t = init(&[".....!...|.bbbbbb..."]).unwrap();
    assert_eq!(t.units_sorted_by_offset()[0], unit(5, 0, 1, 6));
}

/// address_translator_unittest.cc, AddressTranslatorTest.OverlapFromComment.
#[test]
fn translator_overlap_from_comment() {
    use TranslatorError::*;
    let cases: [(&str, &str, Result<(), TranslatorError>); 14] = [
        ("..ssssffff..", "..SSSSFFFF..", Ok(())),
        ("..ssssffff..", "..SSSS..FFFF..", Ok(())),
        ("..ssssffff..", "..FFFF..SSSS..", Ok(())),
        ("..ssssffff..", "..SSOOFF..", Err(BadOverlap)),
        ("..sssooofff..", "..SSSOOOFFF..", Ok(())),
        ("..sssooofff..", "..SSSSSOFFFFF..", Err(BadOverlap)),
        ("..sssooofff..", "..FFOOOOSS..", Err(BadOverlap)),
        ("..sssooofff..", "..SSSOOOF..", Ok(())),
        ("..sssooofff..", "..SSSOOOF..", Ok(())),
        ("..sssooosss..", "..SSSOOOS..", Ok(())),
        ("..sssooofff..", "..SSSOO..", Ok(())),
        ("..sssooofff..", "..SSSOFFF..", Err(BadOverlapDanglingRva)),
        ("..sssooosss..", "..SSSOOSSSS..", Err(BadOverlapDanglingRva)),
        ("..oooooo..", "..OOO..", Ok(())),
    ];
    for (i, (rva, off, want)) in cases.iter().enumerate() {
        let base = format!("{off}|{rva}");
        let u1 = base.replace(['S', 's'], ".");
        let u2 = base.replace(['F', 'f'], ".");
        assert_eq!(init(&[&u1, &u2]).map(|_| ()), *want, "case {i}");
    }
}

/// Runs `first` against each case in both orders (`TwoUnitOverlapTester`).
fn two_unit_overlap(first: &str, cases: &[(&str, Result<(), TranslatorError>)]) {
    for (i, (second, want)) in cases.iter().enumerate() {
        assert_eq!(
            init(&[first, second]).map(|_| ()),
            *want,
            "case {i}: {second}"
        );
        assert_eq!(
            init(&[second, first]).map(|_| ()),
            *want,
            "case {i} swapped: {second}"
        );
    }
}

/// address_translator_unittest.cc, AddressTranslatorTest.Overlap.
#[test]
fn translator_overlap() {
    use TranslatorError::*;
    let ok = Ok(());
    two_unit_overlap(
        "....AAA.......|.....aaa......",
        &[
            ("....BBB.......|.....bbb......", ok),
            ("..BBB.........|...bbb........", ok),
            ("......BBB.....|.......bbb....", ok),
            ("..BBBBBBBBB...|...bbb........", ok),
            ("......BBBBBBBB|.......bbb....", ok),
            ("....BBB.......|.......bbb....", Err(BadOverlap)),
            ("..BBB.........|.......bbb....", Err(BadOverlap)),
            (".......BBB....|.......bbb....", Err(BadOverlap)),
            ("....BBB.......|..........bbb.", Err(BadOverlap)),
            ("..........BBB.|.......bbb....", Err(BadOverlap)),
            ("......BBB.....|.....bbb......", Err(BadOverlap)),
            ("......BBB.....|..bbb.........", Err(BadOverlap)),
            ("......BBB.....|bbb...........", Err(BadOverlap)),
            ("BBB...........|bbb...........", ok),
            ("........BBB...|.........bbb..", ok),
            ("BBB...........|..........bbb.", ok),
            (".BBB..........|..bbb.........", ok),
            (".......BBB....|........bbb...", ok),
            (".BBB..........|........bbb...", ok),
            ("BBBBBB........|bbb...........", ok),
            ("........BBBB..|.........bbb..", ok),
            ("BBBBBB........|..........bbb.", ok),
            (".BBBBBB.......|..bbb.........", ok),
            (".......BBBBB..|........bbb...", ok),
            (".BBB..........|........bbb...", ok),
            ("..BBB.........|........bbb...", Err(BadOverlap)),
            ("...BB.........|....bb........", ok),
            ("....BB........|.....bb.......", ok),
            (".......BB.....|........bb....", ok),
            ("...BBBBBB.....|....bbbbbb....", ok),
            ("..BBBBBB......|...bbbbbb.....", ok),
            ("......BBBBBB..|.......bbbbbb.", ok),
            ("BBBBBBBBBBBBBB|bbbbbbbbbbbbbb", Err(BadOverlap)),
            ("B.............|b.............", ok),
            ("B.............|.............b", ok),
            ("....B.........|.....b........", ok),
            ("....B.........|......b.......", Err(BadOverlap)),
            ("....B.........|......b.......", Err(BadOverlap)),
            ("....BBB.......|.....bb.......", ok),
            ("....BBBB......|.....bbb......", ok),
            (".........BBBBB|.b............", ok),
            ("....AAA.......|.....!........", ok),
            ("....!.........|.....!........", ok),
            ("....!.........|..........!...", ok),
        ],
    );
}

/// address_translator_unittest.cc, AddressTranslatorTest.OverlapOffsetMultiple.
#[test]
fn translator_overlap_offset_multiple() {
    assert!(init(&["A..|a....", ".A.|..a..", "..A|....a"]).is_ok());
    assert!(init(&["..A|a....", ".AA|..a..", "AAA|....a"]).is_ok());
    assert_eq!(
        init(&["A..|a....", ".A.|..a..", ".A.|....a"]).err(),
        Some(TranslatorError::BadOverlap)
    );
}

/// address_translator_unittest.cc, AddressTranslatorTest.OverlapDangling.
#[test]
fn translator_overlap_dangling() {
    use TranslatorError::*;
    let ok = Ok(());
    two_unit_overlap(
        "....AAA.......|.....aaaaaa...",
        &[
            ("....BBB.......|.....bbbbbb...", ok),
            ("....BBB.......|.....bbbbb....", ok),
            ("....BBB.......|.....bbbb.....", ok),
            ("....BBB.......|.....bbb......", ok),
            (".....BBB......|......bbb.....", Err(BadOverlapDanglingRva)),
            (".....BB.......|......bbb.....", ok),
            ("....BBB.......|.....bbbbbbbb.", ok),
            ("..BBBBB.......|...bbbbbbbb...", ok),
            ("......!.......|.bbb..........", Err(BadOverlap)),
            ("..BBBBB.......|...bbbbb......", ok),
            (".......BBB....|.bbb..........", ok),
            (".......BBB....|.bbbb.........", ok),
            (".......!......|.bbbb.........", ok),
            ("......!.......|.......!......", ok),
            ("......!.......|.......b......", Err(BadOverlapDanglingRva)),
            ("......B.......|.......b......", ok),
            ("......BBBB....|.......bbbb...", Err(BadOverlapDanglingRva)),
            ("......BB......|.......bb.....", Err(BadOverlapDanglingRva)),
            ("......BB......|bb............", Err(BadOverlap)),
        ],
    );
}

fn permutations(v: &[&'static str]) -> Vec<Vec<&'static str>> {
    if v.len() <= 1 {
        return vec![v.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..v.len() {
        let mut rest = v.to_vec();
        let x = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, x);
            out.push(p);
        }
    }
    out
}

/// address_translator_unittest.cc, AddressTranslatorTest.Merge (all
/// permutations of both unit lists).
#[test]
fn translator_merge() {
    let case1 = [
        "AAA.......|.aaa......",
        "AA........|.aa.......",
        "..AAA.....|...aaa....",
        "....A.....|.....a....",
        ".....AAA..|......aaa.",
        "........A.|.........a",
    ];
    for p in permutations(&case1) {
        let t = init(&p).unwrap();
        assert_eq!(t.fake_offset_begin(), 9);
        assert_eq!(t.units_sorted_by_offset(), [unit(0, 9, 1, 9)]);
        assert_eq!(t.units_sorted_by_rva(), [unit(0, 9, 1, 9)]);
    }
    let case2 = [
        ".....A..|.a......",
        "......A.|..a.....",
        "A.......|...a....",
        ".A......|....a...",
        "..A.....|.....a..",
    ];
    for p in permutations(&case2) {
        let t = init(&p).unwrap();
        assert_eq!(t.fake_offset_begin(), 7);
        let (u1, u2) = (unit(0, 3, 3, 3), unit(5, 2, 1, 2));
        assert_eq!(t.units_sorted_by_offset(), [u1, u2]);
        assert_eq!(t.units_sorted_by_rva(), [u2, u1]);
    }
}

/// address_translator_unittest.cc, AddressTranslatorTest.RvaToOffsetCache_IsValid.
#[test]
fn translator_rva_is_valid() {
    let t = AddressTranslator::new(vec![
        unit(0x04, 0x28, 0x1A00, 0x28),
        unit(0x30, 0x10, 0x3A00, 0x30),
    ])
    .unwrap();
    assert!(!t.rva_is_valid(INVALID_RVA));
    assert!((0..0x28).all(|i| t.rva_is_valid(0x1A00 + i)));
    assert!((0..0x30).all(|i| t.rva_is_valid(0x3A00 + i)));
    for r in [
        0x1A28,
        0x1A29,
        0x19FF,
        0x19FE,
        0x3A30,
        0x3A31,
        0x39FF,
        0x39FE,
        0,
        0x10,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
    ] {
        assert!(!t.rva_is_valid(r), "{r:#x}");
    }
}
