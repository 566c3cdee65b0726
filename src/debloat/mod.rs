//! Debloat profiles: schema, loading with `extends`, the protected set,
//! matching against a package's apps and files, the plan, and applying the
//! plan to file trees.

pub mod plan;
pub mod profile;
pub mod schema;
pub mod uad;

pub use plan::{Plan, PlanOptions, plan};
pub use profile::{Condition, Level, Os, Profile, ProfileError, Region, Selector, load};

/// Packages that no profile may remove without `--allow-unsafe`: the
/// framework, the system UI and settings, the package installer and
/// permission controller, telephony, the core providers, the launcher, and
/// the MIUI/HyperOS parts whose removal bootloops or disables the device
/// (security center and its permission core, power keeper, the system
/// updater, the MIUI framework apps).
pub const PROTECTED_PACKAGES: &[(&str, &str)] = &[
    ("android", "the framework resources"),
    (
        "com.android.systemui",
        "the status bar, navigation and lock screen",
    ),
    ("com.android.settings", "system settings"),
    ("com.android.packageinstaller", "installs and updates apps"),
    (
        "com.google.android.packageinstaller",
        "installs and updates apps",
    ),
    (
        "com.android.permissioncontroller",
        "grants runtime permissions",
    ),
    (
        "com.google.android.permissioncontroller",
        "grants runtime permissions",
    ),
    ("com.android.phone", "telephony: calls, SIM, mobile data"),
    ("com.android.server.telecom", "routes every call"),
    ("com.android.providers.telephony", "SMS and APN storage"),
    (
        "com.android.providers.settings",
        "stores every system setting; boot fails without it",
    ),
    (
        "com.android.providers.contacts",
        "contacts and call log storage",
    ),
    ("com.android.providers.media", "media storage"),
    ("com.android.providers.media.module", "media storage"),
    (
        "com.android.providers.downloads",
        "the download manager other apps call",
    ),
    ("com.android.shell", "adb shell and bug reports"),
    ("com.android.externalstorage", "shared storage access"),
    ("com.android.inputdevices", "keyboard layouts"),
    ("com.android.location.fused", "location for every app"),
    ("com.android.networkstack", "network connectivity"),
    ("com.android.keychain", "the system credential store"),
    ("com.miui.home", "the launcher (HyperOS has no other)"),
    (
        "com.miui.securitycenter",
        "HyperOS permission and security core; removal bootloops",
    ),
    ("com.miui.securitycore", "HyperOS security core"),
    (
        "com.lbe.security.miui",
        "MIUI permission manager; removal breaks permission grants",
    ),
    (
        "com.miui.powerkeeper",
        "battery and thermal control; removal causes bootloops and overheating",
    ),
    (
        "com.android.updater",
        "the system updater; its services are used at boot",
    ),
    ("com.miui.system", "MIUI framework resources"),
    ("com.miui.rom", "MIUI framework code"),
    ("com.miui.core", "MIUI SDK other system apps link against"),
    ("com.xiaomi.misettings", "HyperOS settings parts"),
];

/// Device-path prefixes that no rule may remove without `--allow-unsafe`.
pub const PROTECTED_PATHS: &[(&str, &str)] = &[
    ("system/framework", "the framework"),
    ("system/bin", "system executables"),
    ("system/lib", "system libraries"),
    ("system/lib64", "system libraries"),
    ("system/apex", "APEX modules"),
    ("system/etc/selinux", "the SELinux policy"),
    ("system/etc/permissions", "platform permissions"),
    ("system/build.prop", "system properties"),
    ("vendor/bin", "vendor executables"),
    ("vendor/lib", "vendor libraries"),
    ("vendor/lib64", "vendor libraries"),
    ("vendor/firmware", "device firmware"),
    ("vendor/etc", "vendor configuration"),
    ("odm/etc", "device configuration"),
];

/// Why a package is protected, if it is.
pub fn protected_package(p: &str) -> Option<&'static str> {
    PROTECTED_PACKAGES
        .iter()
        .find(|(n, _)| *n == p)
        .map(|(_, why)| *why)
}

/// Why a device path is protected, if it is (itself, or inside or above a
/// protected path).
pub fn protected_path(p: &str) -> Option<(&'static str, &'static str)> {
    PROTECTED_PATHS
        .iter()
        .find(|(n, _)| {
            p == *n
                || p.strip_prefix(n).is_some_and(|r| r.starts_with('/'))
                || n.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
        })
        .copied()
}

/// Checks a resolved profile against the protected set: a rule naming a
/// protected package or path is an error unless `allow_unsafe`.
pub fn check_protected(profile: &Profile, allow_unsafe: bool) -> Result<(), ProfileError> {
    if allow_unsafe {
        return Ok(());
    }
    for r in &profile.remove {
        let why = match &r.selector {
            Selector::Package(p) => protected_package(p).map(|w| format!("{p} is protected: {w}")),
            Selector::Path(p) => protected_path(p).map(|(n, w)| format!("{n} is protected: {w}")),
            Selector::Glob(_) => None,
        };
        if let Some(why) = why {
            return Err(ProfileError {
                location: r.origin.to_string(),
                message: format!("{why}; removing it needs --allow-unsafe"),
            });
        }
    }
    Ok(())
}
