# Offline loader for a stopped Samba AD DC's sam.ldb (run with Debian's /usr/bin/python3, which
# has Samba's bindings). Part of dirbridge-testkit; driven by testkit::samba with a JSON plan:
#
#   {"smb_conf": "...", "sam_ldb": "...",
#    "domain": {"minPwdAge": "0"},                      # attributes to replace on the domain
#    "ous": ["OU=Corp", ...],                           # relative to the domain DN
#    "accounts": [{"name": "...", "ou": "OU=...", "password": "..."}],
#    "aces": [{"dn": "...", "account": "...", "sddl": "(OA;CI;CR;{right:User-Force-Change-Password};{class:user};{sid})"}],
#    "ldif": ["file", ...]}                              # loaded in one transaction each
#
# Placeholders in "sddl": {right:<cn of an extended right>}, {attr:<lDAPDisplayName>},
# {class:<lDAPDisplayName>}, {sid} (the account's SID) -- GUIDs come from this server's schema.
# Users in the LDIF whose unicodePwd is a 16-byte NT hash are added with Samba's "bypass password
# hash" control (full password hashing costs ~17 ms a user, this ~1 ms); "pwdLastSet: -1" means
# now. Users with adminCount=1 get AdminSDHolder's security descriptor, as SDProp would do.
# Prints a JSON report: resolved GUIDs, account SIDs and DNs, counts.

import json
import re
import sys
import time

import ldb
from samba import dsdb
from samba.auth import system_session
from samba.dcerpc import misc, security
from samba.ndr import ndr_pack, ndr_unpack
from samba.param import LoadParm
from samba.samdb import SamDB
from samba.sd_utils import SDUtils

plan = json.load(open(sys.argv[1]))
lp = LoadParm()
lp.load(plan["smb_conf"])
# batch_mode: no nested transaction per operation. Without it every add rewrites the large
# index lists (objectClass=user, primaryGroupID=513, ...) and 10,000 users take minutes.
db = SamDB(url=plan["sam_ldb"], session_info=system_session(), lp=lp, options=["batch_mode:1"])
domain_dn = str(db.domain_dn())
report = {"guids": {}, "accounts": {}, "loaded": 0}


def schema_guid(name):
    key = "attr:" + name
    if key not in report["guids"]:
        res = db.search(db.get_schema_basedn(), scope=ldb.SCOPE_ONELEVEL,
                        expression="(lDAPDisplayName=%s)" % name, attrs=["schemaIDGUID"])
        if len(res) != 1:
            raise SystemExit("schema has no %s" % name)
        report["guids"][key] = str(ndr_unpack(misc.GUID, res[0]["schemaIDGUID"][0]))
    return report["guids"][key]


def right_guid(cn):
    key = "right:" + cn
    if key not in report["guids"]:
        res = db.search("CN=Extended-Rights," + str(db.get_config_basedn()), scope=ldb.SCOPE_ONELEVEL,
                        expression="(cn=%s)" % cn, attrs=["rightsGuid"])
        if len(res) != 1:
            raise SystemExit("no extended right %s" % cn)
        report["guids"][key] = str(res[0]["rightsGuid"][0])
    return report["guids"][key]


def account_sid(name):
    res = db.search(domain_dn, scope=ldb.SCOPE_SUBTREE,
                    expression="(sAMAccountName=%s)" % ldb.binary_encode(name), attrs=["objectSid"])
    if len(res) != 1:
        raise SystemExit("no account %s" % name)
    return str(ndr_unpack(security.dom_sid, res[0]["objectSid"][0]))


def expand(sddl, account):
    def sub(m):
        kind, _, arg = m.group(1).partition(":")
        if kind == "right":
            return right_guid(arg)
        if kind in ("attr", "class"):
            return schema_guid(arg)
        if kind == "sid":
            return account_sid(account)
        raise SystemExit("bad placeholder %s" % m.group(0))
    return re.sub(r"\{([^}]+)\}", sub, sddl)


def nttime_now():
    return str(int((time.time() + 11644473600) * 10**7)).encode()


bypass = ["local_oid:%s:0" % dsdb.DSDB_CONTROL_BYPASS_PASSWORD_HASH_OID]

db.transaction_start()
try:
    if plan.get("domain"):
        m = ldb.Message(ldb.Dn(db, domain_dn))
        for k, v in plan["domain"].items():
            m[k] = ldb.MessageElement(str(v).encode(), ldb.FLAG_MOD_REPLACE, k)
        db.modify(m)
    for ou in plan.get("ous", []):
        m = ldb.Message(ldb.Dn(db, ou + "," + domain_dn))
        m["objectClass"] = ldb.MessageElement(b"organizationalUnit", ldb.FLAG_MOD_ADD, "objectClass")
        db.add(m)
    for acct in plan.get("accounts", []):
        db.newuser(acct["name"], acct["password"], userou=acct["ou"], useusernameascn=True,
                   description="dirbridge service account (testkit)")
        dn = "CN=%s,%s,%s" % (acct["name"], acct["ou"], domain_dn)
        report["accounts"][acct["name"]] = {"dn": dn, "sid": account_sid(acct["name"])}
    sd = SDUtils(db)
    for ace in plan.get("aces", []):
        sd.dacl_add_ace(ace["dn"], expand(ace["sddl"], ace["account"]))
    db.transaction_commit()
except BaseException:
    db.transaction_cancel()
    raise

for path in plan.get("ldif", []):
    admins = []
    db.transaction_start()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for changetype, msg in db.parse_ldif(text):
            if changetype == ldb.CHANGETYPE_MODIFY:
                db.modify(msg)
                continue
            controls = []
            if "unicodePwd" in msg and len(msg["unicodePwd"][0]) == 16:
                controls = bypass
                if "pwdLastSet" in msg and str(msg["pwdLastSet"][0]) == "-1":
                    msg["pwdLastSet"] = ldb.MessageElement(nttime_now(), ldb.FLAG_MOD_ADD, "pwdLastSet")
            if "adminCount" in msg:
                admins.append(str(msg.dn))
            db.add(msg, controls=controls)
            report["loaded"] += 1
        if admins:
            holder = db.search("CN=AdminSDHolder,CN=System," + domain_dn, scope=ldb.SCOPE_BASE,
                               attrs=["nTSecurityDescriptor"])
            # SDProp: AdminSDHolder's explicit ACEs, inheritance blocked (Windows' AdminSDHolder
            # is "D:PAI"; Samba's lacks the P, so set it here).
            holder_sd = ndr_unpack(security.descriptor, holder[0]["nTSecurityDescriptor"][0])
            desc = security.descriptor()
            desc.owner_sid = holder_sd.owner_sid
            desc.group_sid = holder_sd.group_sid
            desc.type = holder_sd.type | security.SEC_DESC_DACL_PROTECTED
            for ace in holder_sd.dacl.aces:
                if not ace.flags & security.SEC_ACE_FLAG_INHERITED_ACE:
                    desc.dacl_add(ace)
            sd = ndr_pack(desc)
            for dn in admins:
                m = ldb.Message(ldb.Dn(db, dn))
                m["nTSecurityDescriptor"] = ldb.MessageElement(sd, ldb.FLAG_MOD_REPLACE, "nTSecurityDescriptor")
                db.modify(m)
        db.transaction_commit()
    except BaseException:
        db.transaction_cancel()
        raise

print(json.dumps(report))
