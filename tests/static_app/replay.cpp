// An application with two Python plugins linked in statically (tests/test_static_plugins.py):
// dummy_py and the parse + tables fixture fxt_tables, each an archive exporting nothing but its
// plugin_api struct, registered by that struct. It replays a capture and prints, for the events
// the filter accepts, the fields given, through libsinsp's formatter.
//
//   replay CAPTURE FILTER FORMAT
#include <sinsp.h>
#include <plugin.h>

#include <iostream>
#include <string>

// The names the plugins' authors chose when building the archives (--static-api).
extern "C" const plugin_api dummy_py_api;
extern "C" const plugin_api fxt_tables_api;

int main(int argc, char** argv) {
	if(argc != 4) {
		std::cerr << "usage: replay CAPTURE FILTER FORMAT\n";
		return 2;
	}
	try {
		sinsp inspector;
		sinsp_filter_check_list checks;
		for(const plugin_api* api : {&dummy_py_api, &fxt_tables_api}) {
			auto plugin = inspector.register_plugin(api);
			std::string err;
			if(!plugin->init("{}", err)) {
				std::cerr << "init " << plugin->name() << ": " << err << "\n";
				return 1;
			}
			std::cout << "registered " << plugin->name() << " " << plugin->plugin_version().as_string() << "\n";
			if(plugin->caps() & CAP_EXTRACTION) {
				checks.add_filter_check(sinsp_plugin::new_filtercheck(plugin));
			}
		}
		inspector.open_savefile(argv[1], 0);
		inspector.set_filter(argv[2]);
		sinsp_evt_formatter formatter(&inspector, argv[3], checks);
		sinsp_evt* evt = nullptr;
		for(;;) {
			int32_t rc = inspector.next(&evt);
			if(rc == SCAP_EOF) {
				break;
			}
			if(rc == SCAP_TIMEOUT || rc == SCAP_FILTERED_EVENT) {
				continue;
			}
			if(rc != SCAP_SUCCESS) {
				std::cerr << "next: " << inspector.getlasterr() << "\n";
				return 1;
			}
			std::string line;
			if(formatter.tostring(evt, line)) {
				std::cout << line << "\n";
			}
		}
		inspector.close();
	} catch(const std::exception& e) {
		std::cerr << "error: " << e.what() << "\n";
		return 1;
	}
	return 0;
}
