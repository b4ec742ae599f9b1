#!/usr/bin/env python3
"""Generate data/jobs_sample.csv, the project's bundled sample of job postings.

Every posting is synthetic and written by this script from the phrase tables
below (no third-party text). Run from the repository root:

    python data/make_sample_jobs.py

It (re)writes data/jobs_sample.csv atomically (temp file + os.replace) and
prints a short summary (word counts split on whitespace); for the bundled
file it prints:

    wrote data/jobs_sample.csv
    rows: 240
    rows without keywords: 24
    words per text: min 122 / median 324 / max 761
    industries: 15

The generator is seeded with random.Random(2026), so running it again
reproduces the file byte for byte. Standard library only.

More postings of the same kind, for experiments that need more data than the
bundled sample (the bundled file is only ever written with the defaults):

    python data/make_sample_jobs.py --rows 4000 --seed 7 --output work/jobs_4000.csv
"""

import argparse
import csv
import os
import random
import re
import statistics
import tempfile
from pathlib import Path

SEED = 2026
N_ROWS = 240
MIN_WORDS, MAX_WORDS = 100, 800
OUT = Path(__file__).resolve().parent / "jobs_sample.csv"


def _bar(s):
    """Split a '|'-separated table cell into a list of stripped phrases."""
    return [p.strip() for p in s.split("|") if p.strip()]


# ---------------------------------------------------------------------------
# Phrase tables, one entry per industry. `skills` are 1-3 word phrases (the
# keyword vocabulary); `duties` are industry-flavoured responsibility
# templates where {s} is one of the posting's skills.
# ---------------------------------------------------------------------------
INDUSTRIES = [
    {
        "key": "software",
        "hourly": False,
        "pay": 95000,
        "degree": "Informatics, Computer Science or similar subjects",
        "roles": _bar(
            "Software Engineer|Backend Engineer|Frontend Developer|Full-Stack Developer|Site Reliability Engineer"
        ),
        "areas": _bar("Engineering|Platform Engineering|Product Engineering"),
        "specs": _bar("Payments|Developer Platform|Mobile Apps|Search|Billing|Infrastructure"),
        "orgs": _bar(
            "a B2B SaaS company that builds invoicing tools for small businesses|a fast-growing fintech start-up|an open-source-first developer tools company|a travel-booking platform used in 40 countries"
        ),
        "suffixes": _bar("Labs|Software|Technologies|Systems"),
        "team": "engineers, designers and product managers",
        "objects": _bar("our customers|production services|the product roadmap|internal teams"),
        "skills": _bar(
            "Python|Java|TypeScript|React|Golang|Kubernetes|Docker|AWS|PostgreSQL|REST APIs|GraphQL|CI/CD|unit testing|code review|microservices|Terraform|observability|Kafka|system design|Linux|Git|incident response|performance tuning|Rust|event-driven architecture|web accessibility"
        ),
        "duties": [
            "Design, build and ship features using {s}, from first sketch to production.",
            "Write clean, well-tested code and champion {s} across the team.",
            "Take part in the on-call rotation and improve our {s} practices after each incident.",
            "Break down large technical problems and document trade-offs around {s}.",
            "Pair with colleagues and give thoughtful feedback during {s}.",
        ],
    },
    {
        "key": "data",
        "hourly": False,
        "pay": 100000,
        "degree": "Statistics, Computer Science, Mathematics or a similar quantitative field",
        "roles": _bar("Data Scientist|Data Engineer|Data Analyst|Machine Learning Engineer|Analytics Engineer"),
        "areas": _bar("Data Science|Analytics|Data Platform"),
        "specs": _bar("Recommendation Systems|Pricing|Growth Analytics|Forecasting|Marketplace|Fraud Detection"),
        "orgs": _bar(
            "an online marketplace connecting local makers with buyers|a food-delivery platform|a subscription streaming service|a health-insurance provider modernising its data stack"
        ),
        "suffixes": _bar("Analytics|Data|AI|Insights"),
        "team": "analysts, data scientists and engineers",
        "objects": _bar("product teams|business stakeholders|our models|decision makers"),
        "skills": _bar(
            "SQL|Python|dbt|Airflow|Spark|A/B testing|causal inference|time series forecasting|machine learning|feature engineering|Tableau|Looker|data modelling|statistics|experiment design|Snowflake|BigQuery|recommendation systems|NLP|PyTorch|scikit-learn|data quality|stakeholder management|ETL pipelines|MLOps|dashboarding"
        ),
        "duties": [
            "Turn messy business questions into clear analyses using {s}.",
            "Build and maintain reliable models and pipelines with {s}.",
            "Present findings to non-technical colleagues and show where {s} helps (and where it doesn't).",
            "Define metrics and guard their quality through {s}.",
            "Run experiments end to end, with {s} at the core of the analysis.",
        ],
    },
    {
        "key": "healthcare",
        "hourly": True,
        "pay": 72000,
        "degree": "Nursing (BSc) or an equivalent registered qualification",
        "roles": _bar("Registered Nurse|Staff Nurse|Clinical Nurse Specialist|Healthcare Assistant|Theatre Nurse"),
        "areas": _bar("Nursing|Patient Care|Clinical Services"),
        "specs": _bar("Intensive Care|Emergency Department|Paediatrics|Oncology|Cardiology|Elderly Care"),
        "shifts": _bar("Night Shift|Day Shift|Weekends|Bank Staff"),
        "orgs": _bar(
            "a network of community hospitals and outpatient clinics|a regional home-care provider|a busy teaching hospital|a family-run group of care homes"
        ),
        "suffixes": _bar("Health|Care|Medical Centre|Clinics"),
        "team": "nurses, healthcare assistants and doctors",
        "objects": _bar("patients|families|the ward team|visiting clinicians"),
        "skills": _bar(
            "patient assessment|medication administration|wound care|IV therapy|care planning|infection control|BLS certification|ACLS|electronic health records|triage|discharge planning|patient education|palliative care|phlebotomy|vital signs|telemetry monitoring|safeguarding|clinical documentation|post-operative care|dementia care|manual handling|paediatric care|multidisciplinary teamwork"
        ),
        "duties": [
            "Deliver safe, compassionate care to patients, including {s}.",
            "Carry out {s} in line with local protocols and national guidance.",
            "Escalate concerns promptly and keep accurate records of {s}.",
            "Support students and newly qualified colleagues with {s}.",
            "Work with the wider team on {s} for patients with complex needs.",
        ],
    },
    {
        "key": "finance",
        "hourly": False,
        "pay": 82000,
        "degree": "Accounting, Finance or Economics",
        "roles": _bar(
            "Accountant|Financial Analyst|Accounts Payable Specialist|Management Accountant|Financial Controller"
        ),
        "areas": _bar("Finance|Accounting|Financial Planning & Analysis"),
        "specs": _bar("Month-End Close|FP&A|Group Reporting|Tax|Treasury|Audit"),
        "orgs": _bar(
            "a mid-sized manufacturer with operations in six countries|a private-equity-backed retail group|a growing renewable-energy developer|an independent accounting firm"
        ),
        "suffixes": _bar("Finance|Capital|Partners|Group"),
        "team": "accountants and analysts",
        "objects": _bar("budget holders|the leadership team|external auditors|our suppliers"),
        "skills": _bar(
            "IFRS|US GAAP|month-end close|reconciliations|accounts payable|accounts receivable|financial reporting|budgeting|variance analysis|SAP|NetSuite|Excel|VAT returns|audit preparation|cash flow management|payroll|internal controls|financial modelling|treasury|tax compliance|cost accounting|ACCA|CPA|Power BI|consolidation"
        ),
        "duties": [
            "Prepare accurate, timely numbers and own {s} for your entities.",
            "Investigate variances and explain the story behind them, using {s}.",
            "Strengthen {s} so that the business can rely on the figures.",
            "Liaise with auditors and tax advisers on {s}.",
            "Automate repetitive steps in {s} and free up time for analysis.",
        ],
    },
    {
        "key": "retail",
        "hourly": True,
        "pay": 42000,
        "degree": "Business or Retail Management (not essential)",
        "roles": _bar("Sales Associate|Store Supervisor|Visual Merchandiser|Stock Controller|Assistant Store Manager"),
        "areas": _bar("Store|Retail Operations|Regional Retail"),
        "specs": _bar("Flagship Store|Outlet|Homeware|Fashion|Seasonal"),
        "shifts": _bar("Weekends|Part-Time|Christmas Temporary"),
        "orgs": _bar(
            "an independent homeware retailer with 28 stores|a sportswear brand with a loyal community|a family-owned department store|a sustainable fashion label"
        ),
        "suffixes": _bar("Stores|Retail|& Co.|Market"),
        "team": "sales associates and supervisors",
        "objects": _bar("customers|the shop floor|our stockroom|the store team"),
        "skills": _bar(
            "visual merchandising|stock management|cash handling|customer service|point of sale|loss prevention|store operations|KPI tracking|rota planning|product knowledge|upselling|inventory counts|click and collect|planograms|team coaching|health and safety|sales targets|shrink reduction|returns processing|window displays|clienteling"
        ),
        "duties": [
            "Create a welcoming shop floor, backed by strong {s}.",
            "Keep the store looking its best through {s}.",
            "Help the team hit weekly goals with a focus on {s}.",
            "Handle deliveries, replenishment and {s} accurately.",
            "Open and close the store safely, following our {s} procedures.",
        ],
    },
    {
        "key": "logistics",
        "hourly": True,
        "pay": 52000,
        "degree": "Supply Chain or Logistics (helpful but not required)",
        "roles": _bar(
            "Warehouse Operative|Logistics Coordinator|Shift Supervisor|Inventory Controller|Transport Planner"
        ),
        "areas": _bar("Warehouse|Logistics|Distribution Centre"),
        "specs": _bar("Cold Chain|E-commerce Fulfilment|Inbound|Outbound|Returns"),
        "shifts": _bar("Night Shift|Early Shift|Weekends"),
        "orgs": _bar(
            "a third-party logistics provider serving 150 brands|a grocery distributor with a fleet of 90 trucks|an e-commerce fulfilment centre|a family-owned freight forwarder"
        ),
        "suffixes": _bar("Logistik|Logistics|Freight|Distribution"),
        "team": "operatives, drivers and planners",
        "objects": _bar("inbound deliveries|customer orders|our carriers|the shift team"),
        "skills": _bar(
            "forklift operation|pick and pack|inventory control|WMS|route planning|SAP EWM|cycle counting|goods receiving|dispatch|freight forwarding|customs clearance|last-mile delivery|fleet management|RF scanners|lean warehousing|5S|health and safety|supplier coordination|load planning|cold chain|reverse logistics|demand planning|OTIF|Incoterms|transport management|reach truck"
        ),
        "duties": [
            "Keep goods moving safely and on time, with a focus on {s}.",
            "Plan each shift's workload and coordinate {s}.",
            "Report on performance and drive improvements in {s}.",
            "Work with carriers and suppliers to resolve issues in {s}.",
            "Follow and promote safe working practices, including {s}.",
        ],
    },
    {
        "key": "manufacturing",
        "hourly": True,
        "pay": 68000,
        "degree": "Mechanical, Electrical or Manufacturing Engineering",
        "roles": _bar("Production Technician|Process Engineer|Quality Engineer|Maintenance Technician|CNC Machinist"),
        "areas": _bar("Production|Manufacturing Engineering|Quality"),
        "specs": _bar("Automotive Components|Medical Devices|Food Packaging|Aerospace|Plastics"),
        "shifts": _bar("Night Shift|Rotating Shifts|Weekend Shift"),
        "orgs": _bar(
            "a precision engineering company supplying the automotive industry|a medical-device manufacturer|a packaging producer with three plants|a maker of industrial pumps and valves"
        ),
        "suffixes": _bar("Engineering|Industries|Werke|Manufacturing"),
        "team": "technicians, engineers and operators",
        "objects": _bar("the production line|our customers|the quality team|new product introductions"),
        "skills": _bar(
            "CNC machining|lean manufacturing|Six Sigma|root cause analysis|PLC programming|preventive maintenance|quality control|SPC|GD&T|AutoCAD|SolidWorks|ISO 9001|kaizen|OEE|production scheduling|FMEA|welding|blueprint reading|process validation|5S|injection moulding|continuous improvement|ERP systems|tooling design|PPAP"
        ),
        "duties": [
            "Keep the line running safely and efficiently through {s}.",
            "Lead problem-solving on the shop floor using {s}.",
            "Document processes and support audits, especially around {s}.",
            "Reduce scrap and downtime by applying {s}.",
            "Support new product introductions with {s}.",
        ],
    },
    {
        "key": "education",
        "hourly": False,
        "pay": 56000,
        "degree": "Education or your subject, plus a teaching qualification",
        "roles": _bar(
            "Primary Teacher|Secondary Maths Teacher|Teaching Assistant|Instructional Designer|Science Teacher"
        ),
        "areas": _bar("Teaching and Learning|Curriculum|Student Services"),
        "specs": _bar("Key Stage 2|Maternity Cover|IB Diploma|Online Learning|SEN"),
        "orgs": _bar(
            "an international school with 900 pupils|a small, mixed-ability primary school|an online learning provider for adults|a sixth-form college with a strong STEM focus"
        ),
        "suffixes": _bar("School|Academy|Learning|College"),
        "team": "teachers and support staff",
        "objects": _bar("students|parents and carers|colleagues|the wider school community"),
        "skills": _bar(
            "lesson planning|classroom management|differentiated instruction|curriculum design|formative assessment|safeguarding|SEN support|parent communication|Google Classroom|STEM|literacy|numeracy|behaviour management|student wellbeing|IB curriculum|EAL support|exam preparation|pastoral care|educational technology|tutoring|Moodle|instructional design"
        ),
        "duties": [
            "Plan and teach engaging lessons, with thoughtful {s}.",
            "Track progress and adapt your teaching through {s}.",
            "Contribute to whole-school priorities, including {s}.",
            "Build positive relationships with families through {s}.",
            "Create a calm, inclusive classroom supported by {s}.",
        ],
    },
    {
        "key": "hospitality",
        "hourly": True,
        "pay": 45000,
        "degree": "Hospitality Management (not essential)",
        "roles": _bar("Front Desk Agent|Sous Chef|Restaurant Supervisor|Barista|Event Coordinator"),
        "areas": _bar("Food & Beverage|Front Office|Hotel Operations"),
        "specs": _bar("Rooftop Bar|Banqueting|Boutique Hotel|Fine Dining|Breakfast Service"),
        "shifts": _bar("Evenings|Weekends|Seasonal"),
        "orgs": _bar(
            "a 120-room boutique hotel in the old town|a group of neighbourhood cafés and bakeries|a lakeside resort and spa|a Michelin-listed brasserie"
        ),
        "suffixes": _bar("Hotels|Hospitality|Café|Brasserie"),
        "team": "chefs, hosts and housekeepers",
        "objects": _bar("guests|the kitchen brigade|event organisers|our regulars"),
        "skills": _bar(
            "guest relations|front desk|Opera PMS|food safety|HACCP|wine service|banqueting|event coordination|housekeeping standards|revenue management|menu costing|mise en place|barista skills|reservations|upselling|cash handling|team rostering|allergen management|fine dining|room service|guest complaints|pastry|kitchen hygiene"
        ),
        "duties": [
            "Welcome every guest warmly and deliver memorable service through {s}.",
            "Keep standards high during busy services, paying close attention to {s}.",
            "Prepare the team before each shift and brief them on {s}.",
            "Resolve issues calmly and follow up on {s}.",
            "Help shape seasonal menus and events, bringing your {s} expertise.",
        ],
    },
    {
        "key": "marketing",
        "hourly": False,
        "pay": 78000,
        "degree": "Marketing, Communications or a kindred subject",
        "roles": _bar(
            "Marketing Executive|Content Marketer|Performance Marketing Specialist|Product Marketing Manager|SEO Specialist"
        ),
        "areas": _bar("Marketing|Brand|Growth Marketing"),
        "specs": _bar("B2B SaaS|Paid Acquisition|Content|Lifecycle|Brand Campaigns|EMEA"),
        "orgs": _bar(
            "a direct-to-consumer skincare brand|a B2B software company selling to hospitals|a craft brewery with national distribution|a travel app with two million users"
        ),
        "suffixes": _bar("Media|Brands|Studio|Collective"),
        "team": "marketers, designers and copywriters",
        "objects": _bar("our audience|the sales team|agency partners|new customers"),
        "skills": _bar(
            "SEO|SEM|Google Ads|content strategy|copywriting|social media|email marketing|HubSpot|Google Analytics|A/B testing|brand positioning|campaign management|marketing automation|paid social|conversion optimisation|influencer partnerships|market research|go-to-market|product marketing|CRM|Figma|video production|media relations|budget management|lifecycle marketing"
        ),
        "duties": [
            "Plan, launch and optimise campaigns built around {s}.",
            "Write sharp, on-brand copy and own {s} for your channels.",
            "Report on what's working and double down on {s}.",
            "Work with sales and product on launches, leading {s}.",
            "Keep an eye on competitors and bring fresh ideas for {s}.",
        ],
    },
    {
        "key": "legal",
        "hourly": False,
        "pay": 98000,
        "degree": "Law (LLB, JD or equivalent)",
        "roles": _bar("Paralegal|Legal Counsel|Associate Solicitor|Compliance Officer|Contracts Manager"),
        "areas": _bar("Legal|Compliance|Legal Operations"),
        "specs": _bar("Commercial Contracts|Data Protection|Employment|Corporate M&A|Intellectual Property"),
        "orgs": _bar(
            "a mid-sized commercial law firm|the in-house legal team of a fintech scale-up|a listed pharmaceutical company|a boutique intellectual-property practice"
        ),
        "suffixes": _bar("Legal|LLP|& Partners|Law"),
        "team": "lawyers, paralegals and compliance specialists",
        "objects": _bar("internal clients|the board|regulators|outside counsel"),
        "skills": _bar(
            "contract drafting|due diligence|legal research|GDPR|regulatory compliance|litigation support|commercial contracts|employment law|intellectual property|M&A|corporate governance|regulatory filings|e-discovery|case management|negotiation|data protection|legal writing|client intake|dispute resolution|trademark filings|privacy policies|risk assessment"
        ),
        "duties": [
            "Give clear, pragmatic advice to the business on {s}.",
            "Draft, review and negotiate documents, with particular focus on {s}.",
            "Keep policies and templates up to date, including {s}.",
            "Manage matters efficiently and support senior lawyers with {s}.",
            "Monitor legal developments and explain their impact on {s}.",
        ],
    },
    {
        "key": "construction",
        "hourly": False,
        "pay": 76000,
        "degree": "Civil Engineering, Construction Management or Quantity Surveying",
        "roles": _bar("Site Engineer|Site Supervisor|Quantity Surveyor|Project Engineer|Electrician"),
        "areas": _bar("Construction|Projects|Site Operations"),
        "specs": _bar("Residential|Infrastructure|Commercial Fit-Out|Rail|Schools Programme"),
        "orgs": _bar(
            "a regional building contractor delivering homes and schools|a civil-engineering firm working on rail and road projects|a specialist fit-out company|a design-and-build contractor"
        ),
        "suffixes": _bar("Construction|Bau|Builders|Contracting"),
        "team": "site managers, engineers and trades",
        "objects": _bar("the client|subcontractors|the design team|local residents"),
        "skills": _bar(
            "site management|health and safety|CSCS card|AutoCAD|Revit|BIM|project scheduling|MS Project|cost estimation|quantity surveying|subcontractor management|building regulations|concrete works|steel erection|groundworks|snagging|method statements|risk assessments|procurement|site surveys|carpentry|electrical installation|HVAC|scaffolding|NEBOSH"
        ),
        "duties": [
            "Keep the site safe, tidy and on programme, with strong {s}.",
            "Check that work is built to drawings and specifications, including {s}.",
            "Coordinate trades and deliveries, and take ownership of {s}.",
            "Track costs, progress and quality through {s}.",
            "Prepare reports for the project manager covering {s}.",
        ],
    },
    {
        "key": "customer_support",
        "hourly": True,
        "pay": 48000,
        "degree": "any subject (or equivalent experience)",
        "roles": _bar(
            "Customer Support Specialist|Technical Support Agent|Customer Success Manager|Support Team Lead|Customer Service Advisor"
        ),
        "areas": _bar("Customer Support|Customer Experience|Customer Success"),
        "specs": _bar("German Speaking|Tier 2|Enterprise Accounts|Payments|Onboarding"),
        "shifts": _bar("Evening Shift|Weekends|APAC Hours"),
        "orgs": _bar(
            "a smart-home device company|a payroll software provider|an airline booking platform|a bank-grade payments API"
        ),
        "suffixes": _bar("Support|Connect|Services|Direct"),
        "team": "support agents and success managers",
        "objects": _bar("customers|the product team|enterprise accounts|the knowledge base"),
        "skills": _bar(
            "Zendesk|Salesforce|live chat|ticket triage|troubleshooting|customer satisfaction|CSAT|NPS|SLA management|escalation handling|knowledge base|customer onboarding|de-escalation|phone support|Intercom|technical support|product feedback|quality assurance|workforce management|churn reduction|account management|Jira|multilingual support"
        ),
        "duties": [
            "Answer customer questions by email, chat and phone, using {s}.",
            "Own tricky cases from start to finish, with careful {s}.",
            "Spot recurring issues and feed them back through {s}.",
            "Help us hit our service targets by improving {s}.",
            "Write and update help articles, drawing on your {s} experience.",
        ],
    },
    {
        "key": "hr",
        "hourly": False,
        "pay": 74000,
        "degree": "Human Resources, Psychology or Business",
        "roles": _bar(
            "HR Generalist|Recruiter|HR Business Partner|People Operations Specialist|Talent Acquisition Partner"
        ),
        "areas": _bar("People|Human Resources|Talent Acquisition"),
        "specs": _bar("Tech Hiring|EMEA|Employee Relations|Reward|Early Careers"),
        "orgs": _bar(
            "an engineering consultancy with offices in five countries|a hospitality group with 40 venues|a scale-up in climate tech|a regional hospital trust"
        ),
        "suffixes": _bar("People|Group|Holdings|Partners"),
        "team": "HR, recruitment and people-ops specialists",
        "objects": _bar("line managers|employees|candidates|the leadership team"),
        "skills": _bar(
            "recruitment|talent acquisition|employee onboarding|employee relations|performance management|HRIS|Workday|payroll|compensation and benefits|employment law|learning and development|succession planning|workforce planning|interviewing|employer branding|DEI initiatives|policy development|exit interviews|engagement surveys|HR analytics|conflict resolution|absence management|sourcing"
        ),
        "duties": [
            "Advise managers on people matters, from hiring to {s}.",
            "Run fair, consistent processes for {s}.",
            "Use data to improve the employee experience, especially {s}.",
            "Partner with finance and leadership on {s}.",
            "Make sure our practices in {s} comply with local law.",
        ],
    },
    {
        "key": "sales",
        "hourly": False,
        "pay": 80000,
        "degree": "Business or any subject (or equivalent experience)",
        "roles": _bar(
            "Account Executive|Sales Development Representative|Inside Sales Representative|Key Account Manager|Business Development Manager"
        ),
        "areas": _bar("Sales|Business Development|Sales Operations"),
        "specs": _bar("Mid-Market|DACH|Public Sector|Enterprise|New Business"),
        "orgs": _bar(
            "a cloud security vendor|a supplier of commercial coffee machines|a logistics software start-up|a manufacturer of electric cargo bikes"
        ),
        "suffixes": _bar("Sales|Solutions|Trading|Commercial"),
        "team": "account executives and sales development reps",
        "objects": _bar("prospects|existing customers|the marketing team|channel partners"),
        "skills": _bar(
            "prospecting|cold calling|pipeline management|Salesforce|HubSpot|negotiation|account management|solution selling|territory planning|lead qualification|contract negotiation|quota attainment|product demos|sales forecasting|MEDDIC|LinkedIn Sales Navigator|relationship building|upselling|channel sales|RFP responses|value selling|CRM hygiene"
        ),
        "duties": [
            "Build and manage a healthy pipeline through disciplined {s}.",
            "Run discovery calls and tailor your pitch using {s}.",
            "Work closely with marketing and customer success on {s}.",
            "Close new business and expand existing accounts through {s}.",
            "Share market feedback with product and keep improving your {s}.",
        ],
    },
]

LEVELS = [("intern", 8), ("junior", 17), ("mid", 25), ("senior", 20), ("lead", 10), ("manager", 12), ("director", 8)]
PAY_FACTOR = {"intern": 0.45, "junior": 0.75, "mid": 1.0, "senior": 1.3, "lead": 1.45, "manager": 1.5, "director": 2.1}
YEARS = {"junior": (1, 2), "mid": (2, 4), "senior": (5, 7), "lead": (6, 9), "manager": (5, 8), "director": (10, 15)}
BOSS = {
    "intern": "Team Lead",
    "junior": "Team Lead",
    "mid": "{area} Manager",
    "senior": "{area} Manager",
    "lead": "Head of {area}",
    "manager": "Director of {area}",
    "director": "Chief Operating Officer",
}

# (city, country, currency prefix, pay multiplier vs USD, local language or "")
CITIES = [
    ("Zürich", "Switzerland", "CHF ", 1.25, "German"),
    ("Genève", "Switzerland", "CHF ", 1.25, "French"),
    ("Köln", "Germany", "€", 0.85, "German"),
    ("München", "Germany", "€", 0.9, "German"),
    ("Düsseldorf", "Germany", "€", 0.85, "German"),
    ("São Paulo", "Brazil", "R$", 2.2, "Portuguese"),
    ("Montréal", "Canada", "CA$", 1.1, "French"),
    ("Malmö", "Sweden", "SEK ", 8.5, "Swedish"),
    ("Kraków", "Poland", "PLN ", 2.6, "Polish"),
    ("Lyon", "France", "€", 0.8, "French"),
    ("Málaga", "Spain", "€", 0.7, "Spanish"),
    ("Dublin", "Ireland", "€", 0.95, ""),
    ("London", "United Kingdom", "£", 0.85, ""),
    ("Leeds", "United Kingdom", "£", 0.7, ""),
    ("Manchester", "United Kingdom", "£", 0.72, ""),
    ("Austin", "United States", "$", 1.0, ""),
    ("Chicago", "United States", "$", 1.0, ""),
    ("Denver", "United States", "$", 0.95, ""),
    ("Toronto", "Canada", "CA$", 1.15, ""),
    ("Amsterdam", "Netherlands", "€", 0.9, "Dutch"),
]
NAME_PARTS = _bar(
    "Northwind|Bluehill|Lindqvist|Brückner|Alder & Finch|Lumière|Oakridge|Peregrine|Søndergaard|"
    "Marlowe|Kestrel|Halvorsen|Núñez|Riverbend|Beaumont|Crestline|Zephyr|Vireo|Tannenbaum|"
    "Greystone|Åkesson|Delacroix|Larkspur|Moreau|Castellano|Whitlock|Ferreira|Kowalczyk"
)
MOTTOS = [
    "Do the right thing, even when nobody's watching",
    "Small teams, big ownership",
    "Care first, always",
    "Build it well, then build it better",
    "Every customer, every time",
    "Safety isn't optional",
    "Learn fast, share faster",
    "Make it simple, make it right",
    "People before process",
    "Leave it better than you found it",
    "Quality is a habit, not an act",
]
MODES = ["On-site", "Hybrid", "Hybrid, 3 days in the office", "Remote within the country", "On-site, full-time"]

RESP_1 = [
    "Put your {s} skills to work every day for {obj}.",
    "Own your work in {s} from start to finish, planning through to follow-up.",
    "Improve how the team approaches {s}, and write down what works (and what doesn't).",
    "Work closely with {dept} on projects that involve {s}.",
    "Share progress on {s} with the team each week and flag risks early.",
    "Spot problems early and suggest practical, low-cost fixes, drawing on {s}.",
    "Support {obj} with careful, consistent work in {s}.",
    "Help newer colleagues build confidence with {s}.",
    "Keep documentation for {s} accurate and up to date, so nothing falls through the cracks.",
    "Balance work on {s} with day-to-day requests from {obj}, prioritising what matters most.",
]
RESP_2 = [
    "Combine {s} and {s2} to deliver better outcomes for {obj}.",
    "Bring {s} and {s2} together into one clear, repeatable process.",
    "Act as the go-to person for {s} and {s2} within the team.",
]
RESP_0 = [
    "Contribute ideas in team meetings and help shape how we work.",
    "Follow company policies, including health, safety and data protection.",
    "Represent {co} professionally with {obj} and partners.",
    "Pick up ad-hoc projects while the team grows; there's always something new to learn.",
]
LEAD_RESP = [
    "Lead, coach and develop a team of {n} {team}.",
    "Own the {area} budget and report on KPIs to senior leadership.",
    "Hire great people and build a culture where honest feedback is normal.",
    "Set priorities for the team each quarter and make sure everyone knows why they matter.",
]
DIRECTOR_RESP = [
    "Set the multi-year strategy for {area} and turn it into a clear, funded plan.",
    "Represent {area} on the leadership team and with the board.",
]
REQ_1 = [
    "Solid, practical knowledge of {s}.",
    "Confidence using {s} in a busy, fast-changing environment.",
    "A track record of delivering results through {s}.",
    "Genuine curiosity about {s} and an eagerness to keep learning.",
]
REQ_2 = ["Practical knowledge of {s} and {s2}.", "Experience with {s}; familiarity with {s2} is a strong plus."]
NICE_1 = [
    "Exposure to {s}.",
    "Any formal training or certification in {s}.",
    "You've mentored others in {s}.",
    "Experience with {s} in a multi-site organisation.",
]
NICE_0 = [
    "A second language – German, French, Spanish or Portuguese.",
    "A full, clean driving licence.",
    "Experience in a start-up or another fast-growing business.",
]
BENEFITS = [
    "{n} days of paid holiday plus public holidays",
    "Private health, dental and vision insurance",
    "Pension contributions matched up to {p}% of salary",
    "Flexible working hours and a hybrid-friendly culture",
    "An annual learning budget of {cur}{budget:,}",
    "Subsidised public transport pass and cycle-to-work scheme",
    "Free coffee and pastries from our in-house café",
    "{w} weeks of fully paid parental leave",
    "Confidential employee assistance programme",
    "Staff discount of {p}% across our group",
    "Wellbeing allowance you can spend on a gym, yoga or therapy",
    "Team offsites and a yearly summer party",
    "Paid volunteering days – two a year",
    "Free meals on shift",
]
EEO = [
    (
        "{co} hires on merit. Candidates from every walk of life are wanted here: your faith, skin colour, "
        "birthplace, sex, who you love, how you identify, your age, any disability or past military service play "
        "no part."
    ),
    (
        "We're set on growing a varied, open-minded team. Should any step of the hiring process need adapting for "
        "you, just tell us – we'll sort it out quickly."
    ),
    (
        "At {co}, everyone is welcome. Each applicant who meets the brief is judged on the work alone, never on "
        "colour, belief, sex, love life, gender, homeland, years or health."
    ),
    (
        "Diversity makes us better. Women, black and brown candidates, disabled people and LGBTQ+ folk are rare in "
        "our trade, so we doubly welcome them."
    ),
]


# ---------------------------------------------------------------------------
# Composition helpers
# ---------------------------------------------------------------------------
def words(text):
    return len(text.split())


def the(country):
    return "the " + country if country.startswith(("United", "Netherlands")) else country


def article(phrase):
    return "an" if phrase[0].lower() in "aeiou" else "a"


def make_title(rng, ind, level, city):
    role, area = rng.choice(ind["roles"]), rng.choice(ind["areas"])
    title = {
        "intern": f"{role} Intern",
        "junior": f"Junior {role}",
        "mid": role,
        "senior": f"Senior {role}",
        "lead": f"Lead {role}",
        "manager": f"{area} Manager",
        "director": f"Director of {area}",
    }[level]
    r = rng.random()
    if ind.get("shifts") and r < 0.25:
        title += ", " + rng.choice(ind["shifts"])
    elif r < 0.6:
        title += " - " + rng.choice(ind["specs"])
    r = rng.random()
    if r < 0.2:
        title += " – " + city[0]
    elif r < 0.3:
        title += f" ({rng.choice(['Remote', 'Hybrid', 'Fixed Term, 12 Months', 'Part-Time'])})"
    return title, area


def pay_line(rng, ind, level, city):
    base = ind["pay"] * PAY_FACTOR[level] * city[3]
    lo, hi = int(base * 0.92 / 1000) * 1000, int(base * 1.12 / 1000) * 1000
    dash = rng.choice([" – ", " - ", "–"])
    if ind["hourly"] and level in ("intern", "junior", "mid"):
        return f"{city[2]}{lo / 2000:.2f}{dash}{city[2]}{hi / 2000:.2f} per hour, plus overtime at time and a half"
    return f"{city[2]}{lo:,}{dash}{city[2]}{hi:,} a year, depending on experience"


def experience_req(rng, level, s):
    if level == "intern":
        return f"Coursework, a placement or personal projects involving {s}."
    n = rng.randint(*YEARS[level])
    years = "a year's" if n == 1 else f"{n} years'"
    return rng.choice(
        [
            f"{n}+ years of hands-on practice using {s}.",
            f"At minimum {years} experience in {s}, ideally in a comparable role.",
        ]
    )


def fill(rng, tmpl, ctx, skills):
    """Format a template, drawing {s}/{s2} from `skills` (a list consumed in order)."""
    extra = {k: skills.pop(0) for k in ("s", "s2") if "{" + k + "}" in tmpl}
    return tmpl.format(**ctx, **extra, obj=rng.choice(ctx["ind"]["objects"]))


def skill_bullets(rng, ctx, skills, single, double, first=()):
    """Bullets that together mention every skill in `skills` (each exactly once)."""
    queue, out, first, all_single = list(skills), [], list(first), single
    single = [t for t in rng.sample(single, len(single)) if t not in first]  # avoid repeating a template
    double = rng.sample(double, len(double))
    while queue:
        if first:
            tmpl = first.pop(0)
        elif len(queue) >= 2 and double and (rng.random() < 0.35 or not single):
            tmpl = double.pop()
        else:
            tmpl = single.pop() if single else rng.choice(all_single)
        out.append(fill(rng, tmpl, ctx, queue))
    return out


def paragraphs(rng, ctx):
    """Optional paragraphs, keyed by name; the caller decides which ones to use."""
    c, ind = ctx, ctx["ind"]
    city, country = c["city"][0], c["city"][1]
    p = {}
    p["team"] = (
        f"You'll join a team of {rng.randint(4, 30)} {ind['team']} who care about doing things properly. "
        f"The team works closely with {c['dept']} and reports to the {c['boss']}."
    )
    obj1, obj2 = rng.sample(ind["objects"], 2)
    p["day"] = (
        f"No two days are the same. On a typical day you'll split your time between "
        f"{obj1} and {obj2}, with plenty of room to grow your skills in "
        f"{rng.choice(c['mentioned'])}. We'd rather you ask a naïve question than guess."
    )
    p["values"] = (
        f"We believe good work comes from people who feel trusted. That's why we keep teams small, share "
        f"our numbers openly, and give everyone – from interns to directors – a real say in how we work. "
        f"Our last engagement survey scored {rng.randint(78, 93)}%, and we're working hard to push it higher."
    )
    p["growth"] = (
        f"We invest in our people. Every new starter gets a mentor from day one, a structured "
        f"{rng.choice([30, 60, 90])}-day onboarding plan and regular check-ins. Many of our managers "
        f"started in roles like this one, so there's a clear path to progress if you want it."
    )
    p["schedule"] = rng.choice(
        [
            "This is a full-time, permanent role: 37.5 hours per week, Monday to Friday.",
            "Shifts are 4 on, 4 off (12 hours each), with rotating weekends and paid breaks.",
            "Part-time hours (20–25 per week) are available for the right person – just let us know what suits you.",
            f"This is a {rng.choice([6, 9, 12])}-month fixed-term contract with a strong chance of a permanent role.",
            "Hours are 40 per week, with some flexibility around school drop-off and pick-up.",
        ]
    )
    p["pay"] = (
        f"Location: {city}, {country} ({rng.choice(MODES)})\nSalary: {pay_line(rng, ind, c['level'], c['city'])}"
        f"\nStart date: {rng.choice(['as soon as possible', 'January 2026', 'spring 2026', 'flexible'])}"
    )
    p["apply"] = rng.choice(
        [
            (
                "How to apply: send us your CV (or résumé) and a few lines about why you'd like to join. We read every "
                f"application and aim to reply within {rng.randint(3, 10)} working days."
            ),
            (
                'To apply, click "Apply" and upload your CV. No cover letter needed – we\'ll ask you a couple of short '
                "questions instead. Interviews are held on a rolling basis, so don't wait too long."
            ),
            (
                "Our process: a 20-minute call with the recruiter, a conversation with the hiring manager, and a final "
                f"meeting with the team in {city}. We'll cover travel costs and tell you what to expect at every step."
            ),
        ]
    )
    p["perks"] = (
        f"And yes, our main site is right next to a café that does the best flat white in {city}. "
        "We won't pretend that's why you should apply, but it doesn't hurt."
    )
    return p


def company_intro(rng, ctx):
    co, ind, city = ctx["co"], ctx["ind"], ctx["city"]
    text = (
        f"{co} is {rng.choice(ind['orgs'])}. Founded in {rng.randint(1952, 2021)} in {city[0]}, we now employ "
        f"{rng.choice(['around 60', 'more than 300', 'over 1,500', 'about 4,000', '120'])} people and serve "
        f"customers across {the(city[1])} and beyond."
    )
    r = rng.random()
    motto = rng.choice(MOTTOS)
    if r < 0.3:
        text += f' Our motto is "{motto}" – and we mean it.'
    elif r < 0.5:
        text += f" We live by a simple idea: “{motto}.”"
    elif r < 0.65:
        text += f' Around here you\'ll often hear people say "{motto}".'
    return text


def make_posting(rng, ind, level):
    city = rng.choice(CITIES)
    title, area = make_title(rng, ind, level, city)
    co = f"{rng.choice(NAME_PARTS)} {rng.choice(ind['suffixes'])}"
    bucket = rng.choices(["short", "medium", "long"], weights=[28, 44, 28])[0]
    target = {"short": rng.randint(105, 195), "medium": rng.randint(200, 500), "long": rng.randint(505, 780)}[bucket]
    n_kw = {"short": rng.randint(4, 6), "medium": rng.randint(5, 9), "long": rng.randint(6, 10)}[bucket]
    pool = list(ind["skills"])
    rng.shuffle(pool)
    keywords = pool[:n_kw]
    mentioned = keywords + pool[n_kw : n_kw + rng.randint(0, 3)]
    others = pool[len(mentioned) :]
    rng.shuffle(mentioned)
    other = [i for i in INDUSTRIES if i is not ind]
    dept = rng.choice(
        [
            "operations",
            "finance",
            "the leadership team",
            "customer support",
            "sales",
            "our partners in " + rng.choice(other)["areas"][0],
        ]
    )
    ctx = {
        "ind": ind,
        "co": co,
        "city": city,
        "level": level,
        "area": area,
        "team": ind["team"],
        "mentioned": mentioned,
        "dept": dept,
        "boss": BOSS[level].format(area=area),
        "n": rng.randint(3, 14),
    }

    half = (len(mentioned) + 1) // 2
    resp = skill_bullets(rng, ctx, mentioned[:half], ind["duties"] + RESP_1, RESP_2, [rng.choice(ind["duties"])])
    if level in ("lead", "manager", "director"):
        resp.insert(0, rng.choice(LEAD_RESP).format(**ctx))
    if level == "director":
        resp.insert(0, rng.choice(DIRECTOR_RESP).format(**ctx))
    req_skills = mentioned[half:]
    req = [experience_req(rng, level, req_skills.pop(0))] if req_skills else []
    req += skill_bullets(rng, ctx, req_skills, REQ_1, REQ_2)
    # Pools of optional extras, consumed as the posting grows towards its target length.
    used = " ".join(resp)
    extra_resp = [
        fill(rng, t, ctx, [rng.choice(mentioned)])
        for t in rng.sample(ind["duties"] + RESP_1, 6)
        if t.split("{")[0] not in used
    ]
    extra_resp += [t.format(**ctx, obj=rng.choice(ind["objects"])) for t in RESP_0]
    extra_req = [
        f"A degree in {ind['degree']}, or matching hands-on know-how.",
        "A calm, organised approach and great attention to detail.",
        "Excellent written and spoken English" + (f"; {city[4]} is a big plus." if city[4] else "."),
        f"Legal eligibility for employment in {the(city[1])} "
        + rng.choice(["(we can't offer visa sponsorship for this role).", "(we're happy to sponsor visas)."]),
        "You're someone who enjoys working with people and isn't afraid to ask for help.",
    ]
    nice = [fill(rng, t, ctx, [s]) for t, s in zip(rng.sample(NICE_1, 3), others, strict=False)] + list(NICE_0)
    bens = [
        b.format(
            n=rng.randint(24, 30),
            p=rng.randint(4, 8),
            w=rng.randint(16, 26),
            cur=city[2],
            budget=rng.choice([500, 1000, 1500, 2000]),
        )
        for b in rng.sample(BENEFITS, 9)
    ]
    for lst in (extra_resp, extra_req, nice):
        rng.shuffle(lst)
    while len(resp) < 3:
        resp.append(extra_resp.pop())
    while len(req) < 3:
        req.append(extra_req.pop())
    paras = paragraphs(rng, ctx)

    post = {
        "resp": resp,
        "req": req,
        "nice": [],
        "ben": [],
        "paras": [],
        "paras_text": paras,
        "opening": rng.random() < 0.35,
        "intro": company_intro(rng, ctx),
        "eeo": rng.choice(EEO).format(co=co),
        "bullet": rng.choice(["- ", "- ", "• "]),
        "heads": rng.choice(HEADINGS),
    }
    ops = (
        ["resp"] * len(extra_resp)
        + ["req"] * len(extra_req)
        + ["nice"] * len(nice)
        + ["ben"] * len(bens)
        + ["para:" + k for k in paras]
    )
    rng.shuffle(ops)
    sources = {"resp": extra_resp, "req": extra_req, "nice": nice, "ben": bens}
    for op in ops:  # grow the posting one item at a time until it reaches its target length
        if words(render(title, post)) >= max(target, MIN_WORDS):
            break
        if op.startswith("para:"):
            lst, new = post["paras"], [op[5:]]
        else:
            lst, src = post[op], sources[op]
            new = [src.pop() for _ in range(2 if op in ("ben", "nice") and not lst else 1) if src]
        lst.extend(new)
        if words(render(title, post)) > MAX_WORDS:
            del lst[len(lst) - len(new) :]
    text = render(title, post)
    kw_lower = [k.lower() for k in keywords]
    for k in kw_lower:  # every keyword must occur in the text as a whole phrase
        if not re.search(r"(?<!\w)" + re.escape(k) + r"(?!\w)", text.lower()):
            raise RuntimeError(f"keyword {k!r} missing from posting {title!r}")
    return title, ",".join(kw_lower), text


HEADINGS = [
    ("Responsibilities:", "Requirements:", "Nice to have:", "Benefits"),
    ("Responsibilities:", "Requirements:", "Bonus points:", "Benefits:"),
    ("What you'll own:", "What you will bring:", "Nice to have:", "What we offer:"),
    ("Key responsibilities", "Requirements", "Desirable", "Benefits"),
    ("Your role:", "About you:", "Even better if you have:", "Benefits & perks:"),
]
ORDER_BEFORE = ["values", "team", "day"]
ORDER_AFTER = ["schedule", "pay", "growth", "perks", "apply"]


def render(title, post):
    """Assemble the posting text; paragraphs are separated by blank lines."""
    b, (h_resp, h_req, h_nice, h_ben) = post["bullet"], post["heads"]
    paras = post["paras_text"]
    blocks = []
    if post["opening"]:
        blocks.append(f"We are now hiring {article(title)} {title}!")
    blocks.append(post["intro"])
    blocks += [paras[k] for k in ORDER_BEFORE if k in post["paras"]]
    blocks.append(h_resp + "\n" + "\n".join(b + x for x in post["resp"]))
    blocks.append(h_req + "\n" + "\n".join(b + x for x in post["req"]))
    if post["nice"]:
        blocks.append(h_nice + "\n" + "\n".join(b + x for x in post["nice"]))
    if post["ben"]:
        blocks.append(h_ben + "\n" + "\n".join(b + x for x in post["ben"]))
    blocks += [paras[k] for k in ORDER_AFTER if k in post["paras"]]
    blocks.append(post["eeo"])
    return "\n\n".join(blocks)


def generate(n_rows=N_ROWS, seed=SEED):
    rng = random.Random(seed)
    industries = [INDUSTRIES[i % len(INDUSTRIES)] for i in range(n_rows)]
    rng.shuffle(industries)
    rows, seen_titles = [], set()
    for ind in industries:
        level = rng.choices([name for name, _ in LEVELS], weights=[w for _, w in LEVELS])[0]
        for _ in range(50):  # re-draw until the title is new
            title, keywords, text = make_posting(rng, ind, level)
            if title not in seen_titles:
                break
        seen_titles.add(title)
        rows.append({"title": title, "keywords": keywords, "text": text, "industry": ind["key"]})
    for i in rng.sample(range(n_rows), n_rows // 10):
        rows[i]["keywords"] = ""
    return rows


def write_atomic(rows, path):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jobs_sample.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["title", "keywords", "text"])
            for r in rows:
                w.writerow([r["title"], r["keywords"], r["text"]])
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=N_ROWS, help=f"postings to write [{N_ROWS}]")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the generator [{SEED}]")
    parser.add_argument("--output", type=Path, default=OUT, help="CSV to write [data/jobs_sample.csv]")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    rows = generate(args.rows, args.seed)
    write_atomic(rows, args.output)
    wc = [words(r["text"]) for r in rows]
    print(f"wrote {os.path.relpath(args.output)}")
    print(f"rows: {len(rows)}")
    print(f"rows without keywords: {sum(1 for r in rows if not r['keywords'])}")
    print(f"words per text: min {min(wc)} / median {statistics.median(wc):g} / max {max(wc)}")
    print(f"industries: {len({r['industry'] for r in rows})}")


if __name__ == "__main__":
    main()
