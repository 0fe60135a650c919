package webserver

import (
	"maps"
	"slices"
	"strings"
)

// mimeTypes maps a Content-Type to the file extensions nginx serves it for.
// It is shipped in Go so that rendering never depends on /etc/nginx/mime.types.
// It is a function so that the package has no mutable globals.
func mimeTypes() map[string][]string {
	return map[string][]string{
		"text/html":                        {"html", "htm", "shtml"},
		"text/css":                         {"css"},
		"text/xml":                         {"xml"},
		"text/plain":                       {"txt", "text", "log"},
		"text/markdown":                    {"md", "markdown"},
		"text/csv":                         {"csv"},
		"text/calendar":                    {"ics"},
		"text/vcard":                       {"vcf"},
		"text/vtt":                         {"vtt"},
		"text/mathml":                      {"mml"},
		"text/vnd.sun.j2me.app-descriptor": {"jad"},
		"text/vnd.wap.wml":                 {"wml"},
		"text/x-component":                 {"htc"},
		"text/javascript":                  {"js", "mjs"},
		"application/json":                 {"json", "map"},
		"application/ld+json":              {"jsonld"},
		"application/manifest+json":        {"webmanifest"},
		"application/atom+xml":             {"atom"},
		"application/rss+xml":              {"rss"},
		"application/xhtml+xml":            {"xhtml"},
		"application/wasm":                 {"wasm"},
		"application/pdf":                  {"pdf"},
		"application/rtf":                  {"rtf"},
		"application/postscript":           {"ps", "eps", "ai"},
		"application/zip":                  {"zip"},
		"application/gzip":                 {"gz"},
		"application/x-tar":                {"tar"},
		"application/x-bzip2":              {"bz2"},
		"application/x-xz":                 {"xz"},
		"application/zstd":                 {"zst"},
		"application/x-7z-compressed":      {"7z"},
		"application/vnd.rar":              {"rar"},
		"application/java-archive":         {"jar", "war", "ear"},
		"application/epub+zip":             {"epub"},
		"application/msword":               {"doc"},
		"application/vnd.ms-excel":         {"xls"},
		"application/vnd.ms-powerpoint":    {"ppt"},
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   {"docx"},
		"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         {"xlsx"},
		"application/vnd.openxmlformats-officedocument.presentationml.presentation": {"pptx"},
		"application/vnd.oasis.opendocument.text":                                   {"odt"},
		"application/vnd.oasis.opendocument.spreadsheet":                            {"ods"},
		"application/vnd.oasis.opendocument.presentation":                           {"odp"},
		"application/vnd.apple.mpegurl":                                             {"m3u8"},
		"application/vnd.google-earth.kml+xml":                                      {"kml"},
		"application/vnd.google-earth.kmz":                                          {"kmz"},
		"application/x-x509-ca-cert":                                                {"der", "pem", "crt"},
		"application/x-shockwave-flash":                                             {"swf"},
		"application/octet-stream":                                                  {"bin", "exe", "dll", "deb", "dmg", "iso", "img", "msi", "msp", "msm"},
		"image/png":                                                                 {"png"},
		"image/jpeg":                                                                {"jpg", "jpeg"},
		"image/gif":                                                                 {"gif"},
		"image/webp":                                                                {"webp"},
		"image/avif":                                                                {"avif"},
		"image/svg+xml":                                                             {"svg", "svgz"},
		"image/x-icon":                                                              {"ico"},
		"image/bmp":                                                                 {"bmp"},
		"image/tiff":                                                                {"tif", "tiff"},
		"image/jxl":                                                                 {"jxl"},
		"image/apng":                                                                {"apng"},
		"font/woff":                                                                 {"woff"},
		"font/woff2":                                                                {"woff2"},
		"font/ttf":                                                                  {"ttf"},
		"font/otf":                                                                  {"otf"},
		"application/vnd.ms-fontobject":                                             {"eot"},
		"audio/mpeg":                                                                {"mp3"},
		"audio/ogg":                                                                 {"ogg", "oga", "opus"},
		"audio/wav":                                                                 {"wav"},
		"audio/flac":                                                                {"flac"},
		"audio/aac":                                                                 {"aac"},
		"audio/mp4":                                                                 {"m4a"},
		"audio/midi":                                                                {"mid", "midi", "kar"},
		"audio/webm":                                                                {"weba"},
		"video/mp4":                                                                 {"mp4", "m4v"},
		"video/webm":                                                                {"webm"},
		"video/ogg":                                                                 {"ogv"},
		"video/quicktime":                                                           {"mov"},
		"video/x-msvideo":                                                           {"avi"},
		"video/x-matroska":                                                          {"mkv"},
		"video/mpeg":                                                                {"mpeg", "mpg"},
		"video/mp2t":                                                                {"ts"},
		"video/x-flv":                                                               {"flv"},
		"video/3gpp":                                                                {"3gpp", "3gp"},
	}
}

// charsetTypes get `; charset=utf-8` appended (text/html always does).
func charsetTypes() []string {
	return []string{
		"text/css", "text/xml", "text/plain", "text/markdown", "text/csv",
		"text/calendar", "text/vcard", "text/vtt", "text/javascript",
		"application/json", "application/ld+json", "application/manifest+json",
		"application/atom+xml", "application/rss+xml", "application/xhtml+xml",
		"image/svg+xml",
	}
}

// renderMimeTypes renders the body of mime.types, sorted for determinism.
// Text types carry "; charset=utf-8" in the table itself, which costs
// nothing per request, unlike nginx's charset filter.
func renderMimeTypes() []byte {
	var b strings.Builder
	b.WriteString("# Generated by sitefleet.\ntypes {\n")
	types := mimeTypes()
	utf8 := map[string]bool{"text/html": true}
	for _, t := range charsetTypes() {
		utf8[t] = true
	}
	for _, typ := range slices.Sorted(maps.Keys(types)) {
		name := typ
		if utf8[typ] {
			name = "\"" + typ + "; charset=utf-8\""
		}
		b.WriteString("    " + name + " " + strings.Join(types[typ], " ") + ";\n")
	}
	b.WriteString("}\n")
	return []byte(b.String())
}
