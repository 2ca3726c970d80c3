// falco-plugin-sinsphost: the SDK's host built on real libsinsp (linked statically, the same
// build as the real Falco), so that a test can watch a plugin run inside libsinsp's own API: its
// loader and version checks, its init-config validation, its source engine and capture replay,
// its filter compiler and filterchecks (field names and arguments parsed by libsinsp, values
// extracted through them), its metrics and its state tables.
//
//   falco-plugin-sinsphost LIB [--struct SYMBOL] [--config S] [--plugin LIB [--struct SYMBOL]
//                          [--config S]]... [--open S] [--capture FILE] [--filter EXPR]
//                          [--field F]... [-n N] [--metrics] [--table NAME]...
//
// Each LIB is registered by path (sinsp::register_plugin(path), as Falco does), or with --struct
// by the plugin_api struct exported under SYMBOL (sinsp::register_plugin(const plugin_api*), as an
// application registers a statically linked plugin): looked up in this program first (built with
// -rdynamic and the plugin's archive) and otherwise in LIB opened with dlopen; "-" as LIB means
// this program only. --struct and --config belong to the LIB named last. Every plugin is
// initialised with its config, in order; then the source of the first plugin that has one is
// opened with --open, or --capture FILE is replayed, and up to N events are read (events a
// --filter compiled by libsinsp rejects are skipped, as a rule's condition would). Each --field is
// extracted from every event through libsinsp's filterchecks: for a plugin source, the generic
// event fields and the plugins' (what Falco gives a plugin source), for a capture every built-in
// class and the plugins'. --metrics prints each plugin's metrics after the run; --table NAME
// prints the entries of a table of libsinsp's registry (the threads table, a table a plugin
// exports) after the run, read from the host side.
//
// Output: one JSON object per line, each with a "kind":
//   {"kind":"plugin","name":..,"version":..,"caps":[..]}        per plugin, once registered
//   {"kind":"event","num":N,"source":..,"values":{field: text|null},"errors":{field: message}}
//   {"kind":"metric","plugin":..,"name":..,"type":"monotonic"|"non_monotonic","value":..}
//   {"kind":"table","name":..,"size":N,"entries":[{field: text|null, ...}]}
//   {"kind":"failure","stage":"load"|"init"|"open"|"filter"|"next_batch"|"table","message":..}
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
// and what the host needs to ask the owning plugin directly when the check reports no value.
struct field_request {
	std::string expression;
	std::unique_ptr<sinsp_filter_check> check;
	std::string refused;  // libsinsp's reason, when check is null
	std::shared_ptr<sinsp_plugin> plugin;  // the plugin that owns the field, if one does
	int32_t plugin_field_id = -1;
	std::string arg;
	bool arg_present = false;
	uint64_t arg_index = 0;
};

bool renders_itself(ppm_param_type type) {
	switch(type) {
	case PT_BOOL:
	case PT_IPADDR:
	case PT_IPV4ADDR:
	case PT_IPV6ADDR:
	case PT_IPNET:
	case PT_IPV4NET:
	case PT_IPV6NET:
	case PT_CHARBUF:
	case PT_FSPATH:
	case PT_FSRELPATH:
	case PT_BYTEBUF:
	case PT_INT8:
	case PT_INT16:
	case PT_INT32:
	case PT_INT64:
	case PT_ERRNO:
	case PT_PID:
	case PT_UINT8:
	case PT_UINT16:
	case PT_UINT32:
	case PT_UINT64:
	case PT_RELTIME:
	case PT_ABSTIME:
		return true;
	default:
		return false;  // libsinsp's own text (flags, fds, socket tuples, ...)
	}
}

// One value as text, the way the SDK's hosts print them (for the types renders_itself accepts).
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
	case PT_BYTEBUF: {
		// libsinsp's own string fields count their terminating NUL, a plugin's do not.
		std::string text(reinterpret_cast<const char*>(v.ptr), v.len);
		while(!text.empty() && text.back() == '\0') text.pop_back();
		return text;
	}
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
		uint64_t n = 0;
		std::memcpy(&n, v.ptr, std::min<size_t>(v.len, sizeof(n)));
		return std::to_string(n);
	}
	}
}

// After the check said "no value": was it a failure? Ask the plugin once more, as libsinsp's check
// asked it, and return its last error if the call failed (empty when the field simply had no value
// or the check never asked the plugin: an event of another type or source).
std::string extraction_error(field_request& f, sinsp_evt* evt) {
	const auto& plugin = f.plugin;
	if(!plugin || evt->get_source_idx() == sinsp_no_event_source_idx ||
	   !plugin->extract_event_codes().contains(static_cast<ppm_event_code>(evt->get_type())) ||
	   !sinsp_plugin::is_source_compatible(plugin->extract_event_sources(),
	                                       evt->get_source_name() ? evt->get_source_name() : "")) {
		return "";
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
                                          const filter_check_list& checks,
                                          const std::vector<std::shared_ptr<sinsp_plugin>>& plugins,
                                          const std::vector<std::string>& expressions) {
	std::vector<field_request> out;
	for(const auto& expression : expressions) {
		field_request f;
		f.expression = expression;
		try {
			f.check = checks.new_filter_check_from_fldname(expression, &inspector, true);
			if(!f.check) {
				f.refused = "unknown field '" + expression + "'";  // the Python host's words
			} else {
				f.check->parse_field_name(expression, true, false);
			}
		} catch(const std::exception& e) {
			f.check.reset();
			f.refused = e.what();
		}
		std::string name = expression.substr(0, expression.find('['));
		for(const auto& plugin : plugins) {
			if(!f.check || f.plugin || !(plugin->caps() & CAP_EXTRACTION)) {
				continue;
			}
			const auto& fields = plugin->fields();
			for(size_t i = 0; i < fields.size(); i++) {
				if(fields[i].m_name == name) {
					f.plugin = plugin;
					f.plugin_field_id = static_cast<int32_t>(i);
				}
			}
		}
		auto open = expression.find('[');
		if(f.plugin && open != std::string::npos && expression.back() == ']') {
			f.arg = expression.substr(open + 1, expression.size() - open - 2);
			f.arg_present = true;
			if(f.plugin->fields()[f.plugin_field_id].m_flags & EPF_ARG_INDEX) {
				f.arg_index = std::stoull(f.arg);  // libsinsp accepted it, so it is a number
			}
		}
		out.push_back(std::move(f));
	}
	return out;
}

Json::Value event_json(sinsp_evt* evt, std::vector<field_request>& fields) {
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
		auto type = f.check->get_field_info()->m_type;
		std::vector<extract_value_t> values;
		bool got = false;
		try {
			got = f.check->extract(evt, values, false) && !values.empty();
			if(got && !renders_itself(type)) {
				const char* text = f.check->tostring(evt);
				v["values"][f.expression] = text ? text : "";
				continue;
			}
		} catch(const std::exception& e) {
			v["errors"][f.expression] = e.what();
			continue;
		}
		if(!got) {
			std::string error = extraction_error(f, evt);
			if(error.empty()) {
				v["values"][f.expression] = Json::nullValue;
			} else {
				v["errors"][f.expression] = error;
			}
			continue;
		}
		std::string text;
		for(size_t i = 0; i < values.size(); i++) {
			text += (i ? "," : "") + value_text(type, values[i]);
		}
		v["values"][f.expression] = text;
	}
	return v;
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

Json::Value state_text(ss_plugin_state_type type, const ss_plugin_state_data& d) {
	switch(type) {
	case SS_PLUGIN_ST_INT8:
		return Json::Int64(d.s8);
	case SS_PLUGIN_ST_INT16:
		return Json::Int64(d.s16);
	case SS_PLUGIN_ST_INT32:
		return Json::Int64(d.s32);
	case SS_PLUGIN_ST_INT64:
		return Json::Int64(d.s64);
	case SS_PLUGIN_ST_UINT8:
		return Json::UInt64(d.u8);
	case SS_PLUGIN_ST_UINT16:
		return Json::UInt64(d.u16);
	case SS_PLUGIN_ST_UINT32:
		return Json::UInt64(d.u32);
	case SS_PLUGIN_ST_UINT64:
		return Json::UInt64(d.u64);
	case SS_PLUGIN_ST_STRING:
		return d.str ? d.str : "";
	case SS_PLUGIN_ST_BOOL:
		return d.b != 0;
	default:
		return Json::nullValue;
	}
}

// Every entry of one table of libsinsp's registry, read from the host side through the same
// table interface the plugins get (subtable fields are left out: only their presence is shown).
Json::Value table_json(sinsp& inspector, const std::string& name) {
	const auto& tables = inspector.get_table_registry()->tables();
	auto found = tables.find(name);
	if(found == tables.end()) {
		fail("table", "no table named " + name);
	}
	libsinsp::state::base_table* table = found->second;
	libsinsp::state::sinsp_table_owner owner;  // the host itself, not a plugin
	uint32_t nfields = 0;
	const ss_plugin_table_fieldinfo* infos = table->list_fields(&owner, &nfields);
	using field_list = std::vector<std::pair<const ss_plugin_table_fieldinfo*, ss_plugin_table_field_t*>>;
	field_list fields;
	for(uint32_t i = 0; i < nfields; i++) {
		if(infos[i].field_type == SS_PLUGIN_ST_TABLE) {
			continue;
		}
		auto* accessor = table->get_field(&owner, infos[i].name, infos[i].field_type);
		if(accessor == nullptr) {
			fail("table", "field " + std::string(infos[i].name) + " of " + name + ": " + owner.m_last_owner_err);
		}
		fields.emplace_back(&infos[i], accessor);
	}
	struct walk {
		libsinsp::state::sinsp_table_owner* owner;
		libsinsp::state::base_table* table;
		field_list* fields;
		Json::Value entries{Json::arrayValue};
	} state{&owner, table, &fields};
	table->iterate_entries(
	        &owner,
	        [](void* s, ss_plugin_table_entry_t* e) -> ss_plugin_bool {
		        auto* w = static_cast<walk*>(s);
		        Json::Value entry{Json::objectValue};
		        for(const auto& [info, accessor] : *w->fields) {
			        ss_plugin_state_data data = {};
			        if(w->table->read_entry_field(w->owner, e, accessor, &data) == SS_PLUGIN_SUCCESS) {
				        entry[info->name] = state_text(info->field_type, data);
			        } else {
				        entry[info->name] = Json::nullValue;
			        }
		        }
		        w->entries.append(entry);
		        return 1;
	        },
	        &state);
	Json::Value v;
	v["kind"] = "table";
	v["name"] = name;
	v["size"] = Json::UInt64(table->get_size(&owner));
	v["entries"] = state.entries;
	return v;
}

struct plugin_request {
	std::string library;
	std::string symbol;
	std::string config;
};

std::shared_ptr<sinsp_plugin> register_one(sinsp& inspector, const plugin_request& r) {
	if(r.symbol.empty()) {
		return inspector.register_plugin(r.library);
	}
	// A statically linked plugin is found in this program; otherwise in the named library.
	void* api = dlsym(RTLD_DEFAULT, r.symbol.c_str());
	if(api == nullptr && r.library != "-") {
		void* handle = dlopen(r.library.c_str(), RTLD_NOW | RTLD_LOCAL);
		if(handle == nullptr) {
			fail("load", std::string("dlopen: ") + dlerror());
		}
		api = dlsym(handle, r.symbol.c_str());
	}
	if(api == nullptr) {
		fail("load", "no plugin_api struct named " + r.symbol);
	}
	return inspector.register_plugin(static_cast<const plugin_api*>(api));
}

Json::Value plugin_json(const sinsp_plugin& plugin) {
	Json::Value v;
	v["kind"] = "plugin";
	v["name"] = plugin.name();
	v["version"] = plugin.plugin_version().as_string();
	v["caps"] = Json::arrayValue;
	const std::pair<plugin_caps_t, const char*> caps[] = {{CAP_SOURCING, "sourcing"},
	                                                      {CAP_EXTRACTION, "extraction"},
	                                                      {CAP_PARSING, "parsing"},
	                                                      {CAP_ASYNC, "async"},
	                                                      {CAP_CAPTURE_LISTENING, "capture_listening"}};
	for(const auto& [cap, name] : caps) {
		if(plugin.caps() & cap) {
			v["caps"].append(name);
		}
	}
	return v;
}

int usage(const char* argv0) {
	std::cerr << "usage: " << argv0
	          << " LIB [--struct SYMBOL] [--config S] [--plugin LIB [--struct SYMBOL] [--config S]]..."
	             " [--open S] [--capture FILE] [--filter EXPR] [--field F]... [-n N] [--metrics]"
	             " [--table NAME]...\n";
	return 2;
}

}  // namespace

int main(int argc, char** argv) {
	if(argc < 2) {
		return usage(argv[0]);
	}
	std::vector<plugin_request> requests{{argv[1], "", ""}};
	std::string open_params, capture, filter;
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
		} else if(a == "--plugin") {
			requests.push_back({argv[++i], "", ""});
		} else if(a == "--struct") {
			requests.back().symbol = argv[++i];
		} else if(a == "--config") {
			requests.back().config = argv[++i];
		} else if(a == "--open") {
			open_params = argv[++i];
		} else if(a == "--capture") {
			capture = argv[++i];
		} else if(a == "--filter") {
			filter = argv[++i];
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
	std::vector<std::shared_ptr<sinsp_plugin>> plugins;
	for(const auto& r : requests) {
		try {
			plugins.push_back(register_one(inspector, r));
		} catch(const std::exception& e) {
			fail("load", e.what());
		}
		emit(plugin_json(*plugins.back()));
	}
	for(size_t i = 0; i < plugins.size(); i++) {
		try {
			std::string err;
			if(!plugins[i]->init(requests[i].config, err)) {
				fail("init", strip_prefix(err, "could not initialize plugin: "));
			}
		} catch(const std::exception& e) {
			// libsinsp validates the config against the plugin's init schema before plugin_init.
			fail("init", e.what());
		}
	}

	std::shared_ptr<sinsp_plugin> source;
	for(const auto& plugin : plugins) {
		if(!source && (plugin->caps() & CAP_SOURCING)) {
			source = plugin;
		}
	}
	// The field classes Falco gives the source: a plugin source has the generic event fields, the
	// syscall source (a capture) every built-in class; then the plugins' own, in order.
	std::unique_ptr<filter_check_list> checks;
	if(capture.empty()) {
		checks = std::make_unique<filter_check_list>();
		checks->add_filter_check(inspector.new_generic_filtercheck());
	} else {
		checks = std::make_unique<sinsp_filter_check_list>();
	}
	for(const auto& plugin : plugins) {
		if(plugin->caps() & CAP_EXTRACTION) {
			checks->add_filter_check(sinsp_plugin::new_filtercheck(plugin));
		}
	}

	// Without a source or a capture there is nothing to read; metrics and tables are still shown.
	bool reading = source || !capture.empty();
	try {
		if(!capture.empty()) {
			inspector.open_savefile(capture, 0);
		} else if(source) {
			inspector.open_plugin(source->name(), open_params, sinsp_plugin_platform::SINSP_PLATFORM_HOSTINFO);
		}
	} catch(const std::exception& e) {
		fail("open", e.what());
	}
	std::unique_ptr<sinsp_filter> condition;
	if(!filter.empty()) {
		try {
			auto factory = std::make_shared<sinsp_filter_factory>(&inspector, *checks);
			condition = sinsp_filter_compiler(factory, filter).compile();
		} catch(const std::exception& e) {
			fail("filter", e.what());
		}
	}
	auto fields = resolve_fields(inspector, *checks, plugins, expressions);

	long long count = 0;
	while(reading && (limit < 0 || count < limit)) {
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
		if(condition && !condition->run(evt)) {
			continue;
		}
		count++;
		emit(event_json(evt, fields));
	}

	if(metrics) {
		for(const auto& plugin : plugins) {
			for(const auto& m : plugin->get_metrics()) {
				Json::Value v;
				v["kind"] = "metric";
				v["plugin"] = plugin->name();
				v["name"] = m.name;
				v["type"] = m.metric_type == METRIC_VALUE_METRIC_TYPE_MONOTONIC ? "monotonic" : "non_monotonic";
				v["value"] = metric_value(m);
				emit(v);
			}
		}
	}
	for(const auto& name : tables) {
		emit(table_json(inspector, name));
	}
	inspector.close();
	Json::Value v;
	v["kind"] = "done";
	v["events"] = Json::Int64(count);
	emit(v);
	return 0;
}
