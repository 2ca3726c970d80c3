// falco-plugin-sinsphost: the SDK's host built on real libsinsp (linked statically, the same
// build as the real Falco), so that a test can watch a plugin run inside libsinsp's own API: its
// loader and version checks, its init-config validation, its source engine, its filterchecks
// (field names and arguments parsed by libsinsp, values extracted through them), its metrics.
//
//   falco-plugin-sinsphost LIB [--struct SYMBOL] [--config S] [--open S] [--capture FILE]
//                          [--field F]... [-n N] [--metrics] [--table NAME]...
//
// LIB is registered by path (sinsp::register_plugin(path), as Falco does), or with --struct by the
// plugin_api struct exported under SYMBOL: looked up in this program first (a statically linked
// plugin, the program built with -rdynamic) and otherwise in LIB opened with dlopen. "-" as LIB
// with --struct means the program itself. The plugin is initialised with --config, then its
// source is opened with --open (or --capture FILE is replayed) and up to N events are read; each
// --field is extracted from every event through libsinsp's filterchecks. --metrics prints the
// plugin's metrics after the run; --table NAME prints the entries of a table of libsinsp's
// registry (the threads table, a table a plugin exports) after the run.
//
// Output: one JSON object per line, each with a "kind":
//   {"kind":"plugin","name":..,"version":..,"caps":[..]}
//   {"kind":"event","num":N,"source":..,"values":{field: text|null},"errors":{field: message}}
//   {"kind":"metric","name":..,"type":"monotonic"|"non_monotonic","value":..}
//   {"kind":"table","name":..,"entries":[{field: text, ...}]}
//   {"kind":"failure","stage":"load"|"init"|"open"|"next_batch"|"table","message":..}
//   {"kind":"done","events":N}
// Values are text as the SDK's other hosts print them: lists joined by ",", bools true/false,
// addresses as "<N bytes>". libsinsp's filtercheck answers "no value" both when a plugin has no
// value and when its extraction failed; to tell them apart the host then asks the plugin once
// more for that field through sinsp_plugin::extract_fields and, if that fails, reports the
// plugin's last error as the field's error. A field name or argument libsinsp refuses is that
// field's error on every event (a rule using it would not compile); the other fields still run.
//
// Exit status: 0 when the run ended normally, 1 after a failure line, 2 on bad usage.
// sinsp.h first: it sets up what the libscap headers that plugin.h pulls in expect.
#include <sinsp.h>
#include <plugin.h>
#include <plugin_filtercheck.h>

#include <dlfcn.h>
#include <json/json.h>

#include <cstdint>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

void emit(const Json::Value& v) {
	Json::StreamWriterBuilder b;
	b["indentation"] = "";
	b["emitUTF8"] = true;
	std::cout << Json::writeString(b, v) << "\n";
	std::cout.flush();
}

[[noreturn]] void fail(const std::string& stage, const std::string& message) {
	Json::Value v;
	v["kind"] = "failure";
	v["stage"] = stage;
	v["message"] = message;
	emit(v);
	std::exit(1);
}

std::string strip_prefix(const std::string& s, const std::string& prefix) {
	return s.rfind(prefix, 0) == 0 ? s.substr(prefix.size()) : s;
}

// One requested field: libsinsp's filtercheck for it (null when libsinsp refused the expression),
// and what the host needs to ask the plugin directly when the check reports no value.
struct field_request {
	std::string expression;
	std::unique_ptr<sinsp_filter_check> check;
	std::string refused;  // libsinsp's reason, when check is null
	int32_t plugin_field_id = -1;
	std::string arg;
	bool arg_present = false;
	uint64_t arg_index = 0;
};

// One value as text, the way the SDK's hosts print them.
std::string value_text(ppm_param_type type, const extract_value_t& v) {
	switch(type) {
	case PT_BOOL: {
		uint64_t n = 0;
		std::memcpy(&n, v.ptr, std::min<size_t>(v.len, sizeof(n)));
		return n ? "true" : "false";
	}
	case PT_IPADDR:
	case PT_IPV4ADDR:
	case PT_IPV6ADDR:
	case PT_IPNET:
	case PT_IPV4NET:
	case PT_IPV6NET:
		return "<" + std::to_string(v.len) + " bytes>";
	case PT_CHARBUF:
	case PT_FSPATH:
	case PT_FSRELPATH:
	case PT_BYTEBUF:
		return std::string(reinterpret_cast<const char*>(v.ptr), v.len);
	case PT_INT8:
	case PT_INT16:
	case PT_INT32:
	case PT_INT64:
	case PT_ERRNO:
	case PT_PID: {
		int64_t n = 0;
		if(v.len == 1) n = *reinterpret_cast<const int8_t*>(v.ptr);
		if(v.len == 2) n = *reinterpret_cast<const int16_t*>(v.ptr);
		if(v.len == 4) n = *reinterpret_cast<const int32_t*>(v.ptr);
		if(v.len == 8) std::memcpy(&n, v.ptr, 8);
		return std::to_string(n);
	}
	default: {
		// Unsigned integers of every width (PT_UINT*, PT_RELTIME, PT_ABSTIME, flags, ...).
		uint64_t n = 0;
		std::memcpy(&n, v.ptr, std::min<size_t>(v.len, sizeof(n)));
		return std::to_string(n);
	}
	}
}

// After the check said "no value": was it a failure? Ask the plugin once more, as libsinsp's check
// asked it, and return its last error if the call failed (empty when the field simply had no value).
std::string extraction_error(const std::shared_ptr<sinsp_plugin>& plugin,
                             field_request& f,
                             sinsp_evt* evt) {
	if(f.plugin_field_id < 0 || evt->get_source_idx() == sinsp_no_event_source_idx ||
	   !plugin->extract_event_codes().contains(static_cast<ppm_event_code>(evt->get_type())) ||
	   !sinsp_plugin::is_source_compatible(plugin->extract_event_sources(),
	                                       evt->get_source_name() ? evt->get_source_name() : "")) {
		return "";  // the check never called the plugin
	}
	const auto& info = plugin->fields()[f.plugin_field_id];
	ss_plugin_extract_field field = {};
	field.field_id = f.plugin_field_id;
	field.field = info.m_name.c_str();
	field.arg_key = (f.arg_present && (info.m_flags & EPF_ARG_KEY)) ? f.arg.data() : nullptr;
	field.arg_index = f.arg_index;
	field.arg_present = f.arg_present;
	field.ftype = info.m_type;
	field.flist = (info.m_flags & EPF_IS_LIST) != 0;
	if(plugin->extract_fields(evt, 1, &field)) {
		return "";
	}
	return plugin->get_last_error();
}

std::vector<field_request> resolve_fields(sinsp& inspector,
                                          const sinsp_filter_check_list& checks,
                                          const std::shared_ptr<sinsp_plugin>& plugin,
                                          const std::vector<std::string>& expressions) {
	std::vector<field_request> out;
	for(const auto& expression : expressions) {
		field_request f;
		f.expression = expression;
		try {
			f.check = checks.new_filter_check_from_fldname(expression, &inspector, true);
			if(!f.check) {
				f.refused = "unknown field " + expression;
			} else {
				f.check->parse_field_name(expression, true, false);
			}
		} catch(const std::exception& e) {
			f.check.reset();
			f.refused = e.what();
		}
		if(f.check && (plugin->caps() & CAP_EXTRACTION)) {
			std::string name = expression.substr(0, expression.find('['));
			const auto& fields = plugin->fields();
			for(size_t i = 0; i < fields.size(); i++) {
				if(fields[i].m_name == name) {
					f.plugin_field_id = static_cast<int32_t>(i);
				}
			}
			auto open = expression.find('[');
			if(f.plugin_field_id >= 0 && open != std::string::npos && expression.back() == ']') {
				f.arg = expression.substr(open + 1, expression.size() - open - 2);
				f.arg_present = true;
				if(fields[f.plugin_field_id].m_flags & EPF_ARG_INDEX) {
					f.arg_index = std::stoull(f.arg);  // libsinsp accepted it, so it is a number
				}
			}
		}
		out.push_back(std::move(f));
	}
	return out;
}

Json::Value event_json(sinsp_evt* evt,
                       const std::shared_ptr<sinsp_plugin>& plugin,
                       std::vector<field_request>& fields) {
	Json::Value v;
	v["kind"] = "event";
	v["num"] = Json::UInt64(evt->get_num());
	v["source"] = evt->get_source_name() ? evt->get_source_name() : "";
	v["values"] = Json::objectValue;
	v["errors"] = Json::objectValue;
	for(auto& f : fields) {
		if(!f.check) {
			v["errors"][f.expression] = f.refused;
			continue;
		}
		std::vector<extract_value_t> values;
		bool got = false;
		try {
			got = f.check->extract(evt, values, false) && !values.empty();
		} catch(const std::exception& e) {
			v["errors"][f.expression] = e.what();
			continue;
		}
		if(!got) {
			std::string error = extraction_error(plugin, f, evt);
			if(error.empty()) {
				v["values"][f.expression] = Json::nullValue;
			} else {
				v["errors"][f.expression] = error;
			}
			continue;
		}
		std::string text;
		auto type = f.check->get_field_info()->m_type;
		for(size_t i = 0; i < values.size(); i++) {
			text += (i ? "," : "") + value_text(type, values[i]);
		}
		v["values"][f.expression] = text;
	}
	return v;
}

const char* metric_type_name(metrics_v2_metric_type t) {
	return t == METRIC_VALUE_METRIC_TYPE_MONOTONIC ? "monotonic" : "non_monotonic";
}

Json::Value metric_value(const metrics_v2& m) {
	switch(m.type) {
	case METRIC_VALUE_TYPE_U32:
		return Json::UInt64(m.value.u32);
	case METRIC_VALUE_TYPE_S32:
		return Json::Int64(m.value.s32);
	case METRIC_VALUE_TYPE_U64:
		return Json::UInt64(m.value.u64);
	case METRIC_VALUE_TYPE_S64:
		return Json::Int64(m.value.s64);
	case METRIC_VALUE_TYPE_D:
		return m.value.d;
	case METRIC_VALUE_TYPE_F:
		return static_cast<double>(m.value.f);
	case METRIC_VALUE_TYPE_I:
		return Json::Int64(m.value.i);
	default:
		return Json::nullValue;
	}
}

int usage(const char* argv0) {
	std::cerr << "usage: " << argv0
	          << " LIB [--struct SYMBOL] [--config S] [--open S] [--capture FILE] [--field F]... [-n N]"
	             " [--metrics] [--table NAME]...\n";
	return 2;
}

}  // namespace

int main(int argc, char** argv) {
	if(argc < 2) {
		return usage(argv[0]);
	}
	std::string library = argv[1], symbol, config, open_params, capture;
	std::vector<std::string> expressions, tables;
	long long limit = -1;
	bool metrics = false;
	for(int i = 2; i < argc; i++) {
		std::string a = argv[i];
		bool has_value = i + 1 < argc;
		if(a == "--metrics") {
			metrics = true;
		} else if(!has_value) {
			return usage(argv[0]);
		} else if(a == "--struct") {
			symbol = argv[++i];
		} else if(a == "--config") {
			config = argv[++i];
		} else if(a == "--open") {
			open_params = argv[++i];
		} else if(a == "--capture") {
			capture = argv[++i];
		} else if(a == "--field") {
			expressions.emplace_back(argv[++i]);
		} else if(a == "--table") {
			tables.emplace_back(argv[++i]);
		} else if(a == "-n") {
			limit = std::stoll(argv[++i]);
		} else {
			return usage(argv[0]);
		}
	}

	sinsp inspector;
	std::shared_ptr<sinsp_plugin> plugin;
	try {
		if(symbol.empty()) {
			plugin = inspector.register_plugin(library);
		} else {
			void* api = dlsym(RTLD_DEFAULT, symbol.c_str());
			if(api == nullptr && library != "-") {
				void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
				if(handle == nullptr) {
					fail("load", std::string("dlopen: ") + dlerror());
				}
				api = dlsym(handle, symbol.c_str());
			}
			if(api == nullptr) {
				fail("load", "no plugin_api struct named " + symbol);
			}
			plugin = inspector.register_plugin(static_cast<const plugin_api*>(api));
		}
	} catch(const std::exception& e) {
		fail("load", e.what());
	}
	{
		Json::Value v;
		v["kind"] = "plugin";
		v["name"] = plugin->name();
		v["version"] = plugin->plugin_version().as_string();
		v["caps"] = Json::arrayValue;
		if(plugin->caps() & CAP_SOURCING) v["caps"].append("sourcing");
		if(plugin->caps() & CAP_EXTRACTION) v["caps"].append("extraction");
		if(plugin->caps() & CAP_PARSING) v["caps"].append("parsing");
		if(plugin->caps() & CAP_ASYNC) v["caps"].append("async");
		if(plugin->caps() & CAP_CAPTURE_LISTENING) v["caps"].append("capture_listening");
		emit(v);
	}

	try {
		std::string err;
		if(!plugin->init(config, err)) {
			fail("init", strip_prefix(err, "could not initialize plugin: "));
		}
	} catch(const std::exception& e) {
		// libsinsp validates the config against the plugin's init schema before plugin_init.
		fail("init", e.what());
	}

	// Filterchecks: libsinsp's own (evt.*, and with a capture every syscall field class), and the
	// plugin's when it extracts. Built-in classes come first, as in Falco.
	sinsp_filter_check_list checks;
	if(capture.empty()) {
		checks.add_filter_check(inspector.new_generic_filtercheck());
	}
	if(plugin->caps() & CAP_EXTRACTION) {
		checks.add_filter_check(sinsp_plugin::new_filtercheck(plugin));
	}

	if(capture.empty() && !(plugin->caps() & CAP_SOURCING)) {
		Json::Value v;
		v["kind"] = "done";
		v["events"] = 0;
		emit(v);
		return 0;  // nothing to read: the plugin has no source and no capture was given
	}

	try {
		if(capture.empty()) {
			inspector.open_plugin(plugin->name(), open_params, sinsp_plugin_platform::SINSP_PLATFORM_HOSTINFO);
		} else {
			inspector.open_savefile(capture, 0);
		}
	} catch(const std::exception& e) {
		fail("open", e.what());
	}
	auto fields = resolve_fields(inspector, checks, plugin, expressions);

	long long count = 0;
	while(limit < 0 || count < limit) {
		sinsp_evt* evt = nullptr;
		int32_t rc;
		try {
			rc = inspector.next(&evt);
		} catch(const std::exception& e) {
			fail("next_batch", e.what());
		}
		if(rc == SCAP_EOF) {
			break;
		}
		if(rc == SCAP_TIMEOUT || rc == SCAP_FILTERED_EVENT) {
			continue;
		}
		if(rc != SCAP_SUCCESS) {
			fail("next_batch", inspector.getlasterr());
		}
		count++;
		emit(event_json(evt, plugin, fields));
	}

	if(metrics) {
		for(const auto& m : plugin->get_metrics()) {
			Json::Value v;
			v["kind"] = "metric";
			v["name"] = m.name;
			v["type"] = metric_type_name(m.metric_type);
			v["value"] = metric_value(m);
			emit(v);
		}
	}
	(void)tables;
	inspector.close();
	Json::Value v;
	v["kind"] = "done";
	v["events"] = Json::Int64(count);
	emit(v);
	return 0;
}
