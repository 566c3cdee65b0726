//! The install scripts of a fastboot package, for Linux/macOS (POSIX `sh`)
//! and Windows (`.bat`), written from one list of [`Step`]s so both do the
//! same thing in the same order.
//!
//! Before anything is flashed, each script makes the checks Xiaomi's own
//! scripts make:
//! 1. the device: `getvar product` must be the package's codename;
//! 2. anti-rollback (when the package has `images/anti_version.txt`): the
//!    device's `getvar anti` (`getvar rollback_ver` when the input's own
//!    scripts ask for that) must not be above the package's version, or
//!    flashing older firmware could hard-brick it;
//! 3. CRC lists: when `getvar crc` answers 1, `images/crclist.txt` and
//!    `images/sparsecrclist.txt` are flashed first, so the bootloader
//!    checks every image against them.
//!
//! Any failed step stops the script. A wrong device or anti version stops
//! it before the first write.

pub use crate::rom::scripts::Step;

/// What a script checks and does.
pub struct Script<'a> {
    /// Device codename (`getvar product`).
    pub device: &'a str,
    /// When the package has `images/anti_version.txt`: the device variable
    /// its anti-rollback index is read from (`anti`, or `rollback_ver` on
    /// MediaTek devices), as the input's own scripts ask for it.
    pub anti: Option<&'a str>,
    /// Whether the package has the CRC lists.
    pub crc_lists: bool,
    /// A first install that erases user data (for the header comment).
    pub wipe: bool,
    /// The file name of the script (for the usage line).
    pub name: &'a str,
    /// The flash sequence.
    pub steps: &'a [Step],
}

fn step_words(step: &Step, sep: char) -> (String, String) {
    match step {
        Step::Erase(p) => (format!("erase {p}"), format!("Erasing {p}")),
        Step::Flash {
            target,
            file,
            disable_avb,
        } => {
            let avb = if *disable_avb {
                "--disable-verity --disable-verification "
            } else {
                ""
            };
            let file = file.replace('/', &sep.to_string());
            (
                format!("{avb}flash {target} {file}"),
                format!("Flashing {target}"),
            )
        }
        Step::SetActive(s) => (
            format!("set_active {s}"),
            format!("Setting slot {s} active"),
        ),
        Step::Reboot => ("reboot".into(), "Rebooting".into()),
    }
}

/// The POSIX `sh` script (checked with shellcheck in the tests).
pub fn sh(s: &Script<'_>) -> String {
    let d = s.device;
    let mut t = String::from("#!/bin/sh\n");
    t.push_str(if s.wipe {
        "# First install: flashes every image and ERASES user data.\n"
    } else {
        "# Update: flashes every image and keeps user data.\n"
    });
    t.push_str(&format!(
        "# Usage: sh {} [-s SERIAL]\n# Stops at the first failed step; checks the device before writing anything.\n",
        s.name
    ));
    t.push_str("cd \"$(dirname \"$0\")\" || exit 1\n");
    t.push_str("serial=\"\"\nif [ \"$1\" = \"-s\" ] && [ -n \"$2\" ]; then serial=$2; fi\n");
    t.push_str("fb() {\n  if [ -n \"$serial\" ]; then fastboot -s \"$serial\" \"$@\"; else fastboot \"$@\"; fi\n}\n");
    t.push_str("fail() {\n  echo \"$1\" >&2\n  exit 1\n}\n");
    t.push_str(&format!(
        "if ! fb getvar product 2>&1 | grep -q \"^product: *{d} *$\"; then\n  fail \"This package is for {d}; the connected device is not (fastboot getvar product). Nothing was flashed.\"\nfi\n"
    ));
    if let Some(var) = s.anti {
        t.push_str(&format!(
            "# Anti-rollback: never flash firmware older than the device's index.\n\
             package_anti=$(tr -dc '0-9' < images/anti_version.txt)\n\
             [ -n \"$package_anti\" ] || package_anti=0\n\
             device_anti=$(fb getvar {var} 2>&1 | sed -n 's/^{var}: *\\([0-9][0-9]*\\).*/\\1/p' | head -n 1)\n\
             [ -n \"$device_anti\" ] || device_anti=0\n\
             if [ \"$device_anti\" -gt \"$package_anti\" ]; then\n  \
             fail \"The device's anti-rollback version ($device_anti) is above this package's ($package_anti): flashing it could brick the device. Nothing was flashed.\"\n\
             fi\n"
        ));
    }
    if s.crc_lists {
        t.push_str(
            "if fb getvar crc 2>&1 | grep -q \"^crc: 1\"; then\n  \
             fb flash crclist images/crclist.txt || fail \"Flashing crclist failed\"\n  \
             fb flash sparsecrclist images/sparsecrclist.txt || fail \"Flashing sparsecrclist failed\"\n\
             fi\n",
        );
    }
    for step in s.steps {
        let (cmd, what) = step_words(step, '/');
        if *step == Step::Reboot {
            t.push_str(&format!("fb {cmd}\n"));
        } else {
            t.push_str(&format!("fb {cmd} || fail \"{what} failed\"\n"));
        }
    }
    t
}

/// The Windows script (CRLF line ends).
pub fn bat(s: &Script<'_>) -> String {
    let d = s.device;
    let mut t = String::from("@echo off\r\n");
    t.push_str(if s.wipe {
        "rem First install: flashes every image and ERASES user data.\r\n"
    } else {
        "rem Update: flashes every image and keeps user data.\r\n"
    });
    t.push_str(&format!("rem Usage: {} [-s SERIAL]\r\n", s.name));
    t.push_str("cd /d \"%~dp0\"\r\n");
    t.push_str(&format!(
        "fastboot %* getvar product 2>&1 | findstr /r /c:\"^product: *{d} *$\" >nul || (echo This package is for {d}; the connected device is not. Nothing was flashed. & exit /B 1)\r\n"
    ));
    if let Some(var) = s.anti {
        t.push_str(&format!(
            "rem Anti-rollback: never flash firmware older than the device's index.\r\n\
             set package_anti=0\r\n\
             set /p package_anti=<images\\anti_version.txt\r\n\
             set device_anti=0\r\n\
             for /f \"tokens=2 delims=: \" %%i in ('fastboot %* getvar {var} 2^>^&1 ^| findstr /r /c:\"^{var}:\"') do set device_anti=%%i\r\n\
             if %device_anti% GTR %package_anti% (echo The device's anti-rollback version is above this package's: flashing it could brick the device. Nothing was flashed. & exit /B 1)\r\n"
        ));
    }
    if s.crc_lists {
        t.push_str(
            "fastboot %* getvar crc 2>&1 | findstr /r /c:\"^crc: 1\" >nul\r\n\
             if not errorlevel 1 (\r\n\
             fastboot %* flash crclist images\\crclist.txt || (echo Flashing crclist failed & exit /B 1)\r\n\
             fastboot %* flash sparsecrclist images\\sparsecrclist.txt || (echo Flashing sparsecrclist failed & exit /B 1)\r\n\
             )\r\n",
        );
    }
    for step in s.steps {
        let (cmd, what) = step_words(step, '\\');
        if *step == Step::Reboot {
            t.push_str(&format!("fastboot %* {cmd}\r\n"));
        } else {
            t.push_str(&format!(
                "fastboot %* {cmd} || (echo {what} failed & exit /B 1)\r\n"
            ));
        }
    }
    t
}
