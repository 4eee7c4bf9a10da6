// The libpq client API, exposed to Swift. Nothing else belongs here.
#include <libpq-fe.h>
