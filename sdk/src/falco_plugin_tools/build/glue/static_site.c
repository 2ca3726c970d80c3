/*
 * Where a statically linked plugin's Python packages live (FP_STATIC_API builds, see
 * falco_plugin_tools.build.static). There is no lib<name>.so to find lib<name>.site from:
 * the environment variable FP_SITE_ENV names the directory when set (the application may set
 * it before the plugin's first init), otherwise it is FP_SITE_NAME in the directory of the
 * program or shared object the archive was linked into.
 */
static int fp_locate_site(void) {
    const char *set = getenv(FP_SITE_ENV);
    char path[PATH_MAX];
    if (set && *set) {
        if ((size_t)snprintf(fp_site_dir, sizeof fp_site_dir, "%s", set) >= sizeof fp_site_dir) {
            fp_start_failed("%s is too long", FP_SITE_ENV);
            return -1;
        }
    } else {
        Dl_info info;
        if (!dladdr((void *)&fp_locate_site, &info) || !info.dli_fname) {
            fp_start_failed("cannot find the path of the program the plugin is linked into");
            return -1;
        }
        /* The main program's dli_fname may be a bare name: /proc/self/exe knows its path. */
        const char *binary = strchr(info.dli_fname, '/') ? info.dli_fname : "/proc/self/exe";
        if (!realpath(binary, path)) {
            snprintf(path, sizeof path, "%s", binary);
        }
        char *slash = strrchr(path, '/');
        if (slash) {
            *slash = '\0';
        }
        if ((size_t)snprintf(fp_site_dir, sizeof fp_site_dir, "%s/%s", slash ? path : ".", FP_SITE_NAME) >=
            sizeof fp_site_dir) {
            fp_start_failed("plugin site directory path too long");
            return -1;
        }
    }
    if (access(fp_site_dir, R_OK | X_OK) != 0) {
        fp_start_failed("the plugin's Python packages are missing: %s not found (ship %s beside the program, or set "
                        "%s to its path before the plugin's first init)",
                        fp_site_dir, FP_SITE_NAME, FP_SITE_ENV);
        return -1;
    }
    return 0;
}
