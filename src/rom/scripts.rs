//! Reading the flash scripts of a fastboot package: the fastboot commands
//! of Xiaomi's `flash_all*.sh`, in order, as [`Step`]s. The package writers
//! write scripts from the same steps (`package::flash_script`).

/// One fastboot command of the flash sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `erase PARTITION`.
    Erase(String),
    /// `flash PARTITION FILE` (FILE relative to the package root, `/`
    /// separated); vbmeta images with verity and verification disabled when
    /// `disable_avb`.
    Flash {
        /// Partition as fastboot names it (`boot_ab`, `super`).
        target: String,
        /// The file.
        file: String,
        /// Pass `--disable-verity --disable-verification`.
        disable_avb: bool,
    },
    /// `set_active SLOT`.
    SetActive(String),
    /// `reboot`.
    Reboot,
}

/// Characters a partition or file name may have in a script line.
pub fn is_script_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b))
        && !s.split('/').any(|c| c == "..")
}

/// Why an official script cannot be followed step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfollowable(pub String);

/// What an official flash script does, read line by line: the fastboot
/// commands in order (`getvar` checks and the CRC list flashes are left
/// out: the written scripts make them), whether it relocks the bootloader.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Official {
    /// The commands.
    pub steps: Vec<Step>,
    /// Lock commands it held (`oem lock`, `flashing lock`), left out.
    pub locks: Vec<String>,
}

/// Reads an official `flash_all*.sh`: every line that is no comment and
/// runs fastboot must be a command romkit knows (`erase P`, `flash P FILE`
/// with FILE under the package folder, `set_active S`, `reboot`,
/// `getvar V`, a lock); shell lines around them (the checks) are dropped,
/// since the written scripts make the checks themselves.
pub fn read_official(text: &str) -> Result<Official, Unfollowable> {
    let mut out = Official::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with("rem ") || line.starts_with("::") {
            continue;
        }
        // The package folder prefixes have spaces (`` `dirname $0`/ ``):
        // gone before the line is split into words.
        let norm = PREFIXES
            .iter()
            .fold(line.to_string(), |l, p| l.replace(p, ""));
        let words: Vec<&str> = norm.split_whitespace().collect();
        // `fb` is the helper the scripts romkit writes call fastboot through.
        if !matches!(words.first(), Some(&"fastboot") | Some(&"fb")) {
            continue;
        }
        let mut w = &words[1..];
        if matches!(
            w.first(),
            Some(&"$*") | Some(&"%*") | Some(&"$@") | Some(&"\"$@\"")
        ) {
            w = &w[1..];
        }
        // Options before the command (`--disable-verity`): the written
        // scripts decide them.
        while w.first().is_some_and(|x| x.starts_with("--")) {
            w = &w[1..];
        }
        let bad = |why: &str| Unfollowable(format!("line {}: {why}: {line}", n + 1));
        match w {
            ["getvar", ..] => {}
            ["oem", "lock", ..] | ["flashing", "lock", ..] | ["oem", "lock_critical", ..] => {
                out.locks.push(line.to_string());
            }
            ["flash", "crclist" | "sparsecrclist", ..] => {}
            ["erase", p, ..] if is_script_safe(p) => out.steps.push(Step::Erase(p.to_string())),
            ["flash", p, file, ..] if is_script_safe(p) => {
                let file = package_path(file).ok_or_else(|| bad("a file outside the package"))?;
                out.steps.push(Step::Flash {
                    target: p.to_string(),
                    file,
                    disable_avb: false,
                });
            }
            ["set_active", s, ..] if is_script_safe(s) => {
                out.steps.push(Step::SetActive(s.to_string()))
            }
            ["reboot", ..] => out.steps.push(Step::Reboot),
            _ => return Err(bad("a fastboot command romkit does not know")),
        }
    }
    if !out.steps.iter().any(|s| matches!(s, Step::Flash { .. })) {
        return Err(Unfollowable("the script flashes nothing".into()));
    }
    Ok(out)
}

/// How official scripts name the package folder before a file.
const PREFIXES: [&str; 8] = [
    "`dirname $0`/",
    "$(dirname $0)/",
    "$(dirname \"$0\")/",
    "`pwd`/",
    "${SCRIPT_PATH}/",
    "$SCRIPT_PATH/",
    "%~dp0",
    "./",
];

/// A file word of a script line, its folder prefix already gone:
/// `images\abl.elf` → `images/abl.elf`; `None` outside the package.
fn package_path(word: &str) -> Option<String> {
    let rest = word.trim_matches('"').replace('\\', "/");
    (is_script_safe(&rest) && !rest.starts_with('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_lines_become_steps() {
        let text = "fastboot $* getvar product 2>&1 | grep \"^product: *x\"\n\
            if [ $? -ne 0 ] ; then echo \"Missmatching\"; exit 1; fi\n\
            fastboot $* flash crclist `dirname $0`/images/crclist.txt\n\
            fastboot $* erase boot_ab\n\
            #fastboot $* flash modemfirmware_ab `dirname $0`/images/MODEM-FW.bin\n\
            fastboot $* flash abl_ab `dirname $0`/images/abl.elf\n\
            fastboot $* flash super $(dirname $0)/images/super.img\n\
            fastboot $* oem lock\n\
            fastboot $* set_active a\n\
            fastboot $* reboot\n";
        let o = read_official(text).unwrap();
        assert_eq!(
            o.steps,
            vec![
                Step::Erase("boot_ab".into()),
                Step::Flash {
                    target: "abl_ab".into(),
                    file: "images/abl.elf".into(),
                    disable_avb: false
                },
                Step::Flash {
                    target: "super".into(),
                    file: "images/super.img".into(),
                    disable_avb: false
                },
                Step::SetActive("a".into()),
                Step::Reboot,
            ]
        );
        assert_eq!(o.locks, vec!["fastboot $* oem lock"]);
        assert!(read_official("fastboot $* flash boot /etc/passwd\n").is_err());
        assert!(read_official("fastboot $* format userdata\n").is_err());
    }
}
