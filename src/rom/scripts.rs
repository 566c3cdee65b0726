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
        if is_comment(line) {
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

/// The device variables an anti-rollback check asks for: `anti`
/// (Qualcomm), `rollback_ver` (MediaTek).
pub const ANTI_VARS: [&str; 2] = ["anti", "rollback_ver"];

/// The device checks an official script makes, read from every line that
/// asks the device something (`getvar`), whatever shell construct holds it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checks {
    /// The variable its anti-rollback check asks for (one of [`ANTI_VARS`]).
    pub anti_var: Option<String>,
    /// The package's anti-rollback version written in the script
    /// (`CURRENT_ANTI_VER=N`, `set CURRENT_ANTI_VER=N`), when it is a number
    /// rather than read from `images/anti_version.txt`.
    pub anti_version: Option<u32>,
    /// Lines asking the device for something romkit's scripts do not check
    /// (`line N: TEXT`): following such a script would drop that check.
    pub unknown: Vec<String>,
}

/// Reads the checks of an official `.sh` or `.bat` flash script: product
/// (`getvar product`), anti-rollback (`getvar anti` or `getvar
/// rollback_ver`, and `CURRENT_ANTI_VER`), CRC lists (`getvar crc`) are the
/// ones the written scripts make; any other variable is an unknown check.
pub fn read_checks(text: &str) -> Checks {
    let mut out = Checks::default();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if is_comment(line) {
            continue;
        }
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || "'\"()`|".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        for pair in words.windows(2) {
            if pair[0] != "getvar" {
                continue;
            }
            let var = pair[1];
            if ANTI_VARS.contains(&var) {
                out.anti_var.get_or_insert_with(|| var.to_string());
            } else if !matches!(var, "product" | "crc") {
                out.unknown.push(format!("line {}: {line}", n + 1));
            }
        }
        if let Some(v) = anti_assignment(line) {
            out.anti_version = Some(v);
        }
    }
    out
}

/// Whether a script line is a comment (`#`, `rem`, `::`) or empty.
fn is_comment(line: &str) -> bool {
    let lower = line.trim_start_matches('@').to_ascii_lowercase();
    line.is_empty()
        || line.starts_with('#')
        || line.starts_with("::")
        || lower == "rem"
        || lower.starts_with("rem ")
}

/// `N` of `CURRENT_ANTI_VER=N`, `set CURRENT_ANTI_VER=N` or
/// `set "CURRENT_ANTI_VER=N"`.
fn anti_assignment(line: &str) -> Option<u32> {
    let rest = line
        .strip_prefix("set ")
        .map(|r| r.trim().trim_matches('"'))
        .unwrap_or(line);
    let value = rest
        .strip_prefix("CURRENT_ANTI_VER=")?
        .trim()
        .trim_end_matches(';');
    value.parse().ok()
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

    #[test]
    fn checks_known_and_unknown() {
        // Shapes of Xiaomi's own scripts: Qualcomm with the version in the
        // script, MediaTek asking for rollback_ver, Windows for-loops.
        let sh = "fastboot $* getvar product 2>&1 | grep \"^product: *houji\"\n\
            CURRENT_ANTI_VER=1\n\
            ver=`fastboot $* getvar anti 2>&1 | grep -oP \"anti: \\K[0-9]+\"`\n\
            if [ -z \"$ver\" ]; then ver=0; fi\n\
            fastboot $* getvar crc 2>&1 | grep \"^crc: 1\"\n\
            #fastboot $* getvar secret\n";
        let c = read_checks(sh);
        assert_eq!(c.anti_var.as_deref(), Some("anti"));
        assert_eq!(c.anti_version, Some(1));
        assert!(c.unknown.is_empty(), "{:?}", c.unknown);

        let bat = "fastboot %* getvar product 2>&1 | findstr /r /c:\"^product: *x\" || exit /B 1\r\n\
            set \"CURRENT_ANTI_VER=4\"\r\n\
            ::set CURRENT_ANTI_VER=9\r\n\
            REM set CURRENT_ANTI_VER=8\r\n\
            for /f \"tokens=2 delims=: \" %%i in ('fastboot %* getvar rollback_ver 2^>^&1 ^| findstr /r /c:\"rollback_ver:\"') do (set version=%%i)\r\n";
        let c = read_checks(bat);
        assert_eq!(c.anti_var.as_deref(), Some("rollback_ver"));
        assert_eq!(c.anti_version, Some(4));
        assert!(c.unknown.is_empty());

        // Read from a file, the version is not in the script.
        let c = read_checks(
            "CURRENT_ANTI_VER=`cat images/anti_version.txt`\nCURRENT_ANTI_VER=${CURRENT_ANTI_VER:-0}\n",
        );
        assert_eq!(c.anti_version, None);

        let c = read_checks(
            "fastboot $* getvar product\nspl=$(fastboot $* getvar security-patch-level 2>&1)\n",
        );
        assert_eq!(
            c.unknown,
            ["line 2: spl=$(fastboot $* getvar security-patch-level 2>&1)"]
        );
    }
}
