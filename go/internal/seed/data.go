package seed

// The catalog's vocabulary. Brands and chip names are made up; the wording
// follows what a JD or Tmall listing of the same kind of product says.

// category is one top-level department.
type category struct {
	key        string // stable ASCII key, used by the artwork package
	name       string // first breadcrumb level
	brands     []string
	model      modelStyle
	modelLabel string // spec row name for the model
	adjs       []string
	subs       []sub
	specs      []specGroup
	points     []string // selling points: subtitle and highlights
	sentences  []string // description paragraphs
	box        []string // in the box
	themes     []string // themed shop names
	suffixes   []string // themed shop name endings
}

// sub is a second breadcrumb level with its own naming and price range.
type sub struct {
	name   string // second breadcrumb level
	noun   string // what the product is, for alt texts
	tmpl   string // name template, see expand
	vars   [][]string
	lo, hi int         // price range, yuan
	specs  []specGroup // replaces the category's groups when set
	points []string    // selling points only this sub-category has
	models []string    // model prefixes, replacing the category's
	titles [2][]string // book titles: first part + second part
}

type modelStyle struct {
	prefixes []string
	lo, hi   int
	suffixes []string
}

type specGroup struct {
	name  string
	items []specDef
}

type specDef struct {
	name   string
	values []string
}

func g(name string, items ...specDef) specGroup { return specGroup{name: name, items: items} }
func s(name string, values ...string) specDef   { return specDef{name: name, values: values} }
func l(xs ...string) []string                   { return xs }

var colours = l("曜石黑", "冰川蓝", "月光白", "星河银", "晨曦紫", "松林绿", "珊瑚橙", "暮光金")

var categories = []category{
	{
		key:    "phone",
		name:   "手机数码 Phones & digital",
		brands: l("星耀", "极光", "青禾", "Novaro", "卓尔", "云帆", "Pixora", "凌越"),
		model: modelStyle{prefixes: l("X", "Neo ", "K", "Note ", "Z", "Air "), lo: 5, hi: 70,
			suffixes: l("", "", " Pro", " Pro+", " Ultra", " Lite", " SE", " Max")},
		modelLabel: "型号 Model",
		adjs:       l("旗舰", "轻薄", "长续航", "影像旗舰", "游戏电竞"),
		subs: []sub{
			{name: "手机 Mobile phones", noun: "5G 智能手机", tmpl: "$b $m 5G $a智能手机 $0 $1",
				vars: [][]string{l("8GB+128GB", "8GB+256GB", "12GB+256GB", "12GB+512GB", "16GB+1TB"), colours}, lo: 899, hi: 7999, points: l("2亿像素 影像系统", "120W 超级快充", "卫星通信 户外无忧", "旗舰芯片 性能强劲")},
			{name: "平板电脑 Tablets", noun: "平板电脑", tmpl: "$b Pad $m $0 平板电脑 $1 $2",
				vars: [][]string{l("10.4英寸", "11英寸", "12.4英寸", "13.2英寸"), l("6GB+128GB WLAN版", "8GB+256GB WLAN版", "12GB+256GB 5G版"), colours[:5]}, lo: 999, hi: 5999, points: l("2.8K 144Hz 护眼大屏", "支持手写笔 学习办公", "四扬声器 沉浸影音")},
			{name: "智能手表 Smartwatches", noun: "智能手表", tmpl: "$b Watch $m 智能手表 $0 $1",
				vars: [][]string{l("46mm", "42mm", "41mm"), l("黑色氟橡胶表带", "银色钢表带", "橙色编织表带", "白色真皮表带")}, lo: 299, hi: 2999, points: l("14天超长续航", "心率血氧 全天监测", "5ATM 防水 游泳可戴"),
				specs: []specGroup{
					g("屏幕 Display", s("屏幕尺寸 Size", "1.43英寸", "1.5英寸", "1.96英寸"), s("屏幕材质 Panel", "AMOLED", "LTPO AMOLED"), s("分辨率 Resolution", "466×466", "480×480", "410×502"), s("常亮显示 Always-on", "支持", "不支持")),
					g("健康 Health", s("心率监测 Heart rate", "支持 24 小时监测"), s("血氧监测 SpO2", "支持"), s("睡眠监测 Sleep", "支持睡眠分期"), s("运动模式 Workouts", "100+ 种", "150+ 种"), s("防水等级 Water resistance", "5ATM", "5ATM + IP68")),
					g("电池 Battery", s("典型续航 Battery life", "7天", "14天", "4天"), s("充电方式 Charging", "磁吸无线充电"), s("充电时长 Charge time", "约60分钟", "约90分钟"), s("电池容量 Capacity", "350mAh", "480mAh", "520mAh")),
				}},
		},
		specs: []specGroup{
			g("屏幕 Display", s("屏幕尺寸 Size", "6.1英寸", "6.67英寸", "6.78英寸", "6.82英寸"), s("分辨率 Resolution", "2400×1080", "2800×1260", "3200×1440"), s("刷新率 Refresh rate", "90Hz", "120Hz", "144Hz", "1–120Hz LTPO"), s("屏幕材质 Panel", "OLED", "AMOLED", "LTPO OLED"), s("峰值亮度 Peak brightness", "1600尼特", "2600尼特", "3000尼特"), s("护眼 Eye care", "3840Hz PWM 调光", "DC 调光", "低蓝光认证")),
			g("处理器 Processor", s("CPU型号 CPU", "天枢 9000", "天枢 8300", "曜芯 A17", "曜芯 S7 Gen 2"), s("CPU核数 Cores", "八核", "十核"), s("制程 Process", "3nm", "4nm", "5nm"), s("运行内存 RAM", "8GB", "12GB", "16GB"), s("机身存储 Storage", "128GB", "256GB", "512GB", "1TB")),
			g("电池 Battery", s("电池容量 Capacity", "4500mAh", "5000mAh", "5500mAh", "6000mAh"), s("有线快充 Wired charging", "33W", "67W", "90W", "120W"), s("无线充电 Wireless charging", "不支持", "15W", "50W"), s("反向充电 Reverse charging", "支持", "不支持")),
			g("相机 Camera", s("后置主摄 Main camera", "5000万像素", "1亿像素", "2亿像素"), s("前置摄像头 Front camera", "1600万像素", "3200万像素"), s("光学防抖 OIS", "支持", "不支持"), s("长焦 Telephoto", "3倍光学变焦", "5倍潜望长焦", "无"), s("视频录制 Video", "4K 60fps", "8K 24fps", "1080P 60fps")),
			g("网络 Network", s("网络制式 Network", "5G 全网通"), s("双卡 Dual SIM", "双卡双待", "单卡"), s("WLAN", "Wi-Fi 7", "Wi-Fi 6", "Wi-Fi 6E"), s("蓝牙 Bluetooth", "5.3", "5.4"), s("NFC", "支持", "不支持")),
		},
		points: l("长续航", "IP68 防尘防水", "6期免息", "以旧换新 至高补贴500元", "多设备协同"),
		sentences: l(
			"全新一代旗舰平台带来更快的应用启动速度与更低的功耗，多任务切换流畅自如。",
			"大面积 VC 均热板配合石墨烯散热，长时间游戏也能保持稳定帧率。",
			"主摄采用大底传感器，夜景模式下依然纯净通透，暗部细节清晰可见。",
			"屏幕支持高频 PWM 调光与自然色彩显示，长时间阅读更舒适。",
			"机身采用航空级铝合金中框与微晶玻璃，兼顾轻薄手感与抗摔耐用。",
			"支持多设备协同，手机、平板与电脑之间可一键互传文件。",
			"The flagship chipset keeps apps responsive while drawing less power.",
			"A large main sensor captures clean, detailed photos even at night.",
		),
		box:      l("主机 ×1", "USB-C 数据线 ×1", "快速充电器 ×1", "保护壳 ×1", "取卡针 ×1", "快速入门指南 ×1"),
		themes:   l("数码先锋", "极客", "Bytewave 数码", "星河通讯", "掌上科技", "Nova Mobile"),
		suffixes: l("专营店", "数码专营店", "官方授权店"),
	},
	{
		key:    "computer",
		name:   "电脑办公 Computers & office",
		brands: l("墨川", "Arcbyte", "锐拓", "北辰", "Lumeo", "云帆", "极光", "Kestrel"),
		model: modelStyle{prefixes: l("Book ", "Pro ", "Air ", "G", "X", "Studio "), lo: 13, hi: 17,
			suffixes: l("", " 2024", " 2025", " Plus", " Ultra")},
		modelLabel: "型号 Model",
		adjs:       l("高性能", "轻薄", "高色域", "AI", "商务"),
		subs: []sub{
			{name: "轻薄本 Ultrabooks", noun: "轻薄笔记本电脑", tmpl: "$b $m 14英寸 $a轻薄笔记本电脑 $0 $1",
				vars: [][]string{l("16GB+512GB", "16GB+1TB", "32GB+1TB", "32GB+2TB"), l("深空灰", "皓月银", "雾蓝", "晨曦金")}, lo: 3299, hi: 12999, points: l("1.2kg 轻至随行", "2.8K 120Hz OLED 屏")},
			{name: "游戏本 Gaming laptops", noun: "电竞游戏本", tmpl: "$b $m 16英寸 电竞游戏本 $0 $1 $2",
				vars: [][]string{l("2.5K 240Hz", "2.5K 165Hz", "4K 120Hz"), l("16GB+1TB", "32GB+1TB", "32GB+2TB"), l("暗夜黑", "极光白")}, lo: 5999, hi: 19999, points: l("满血独显 畅玩 3A", "240Hz 电竞屏", "双风扇 狂暴散热")},
			{name: "二合一笔记本 2-in-1 laptops", noun: "二合一笔记本", tmpl: "$b $m 13英寸 二合一平板笔记本 $0 $1",
				vars: [][]string{l("8GB+256GB", "16GB+512GB", "16GB+1TB"), l("铂金灰", "钴蓝", "雅典白")}, lo: 2999, hi: 9999, points: l("360° 翻转 触控手写", "平板笔记本二合一")},
		},
		specs: []specGroup{
			g("处理器 Processor", s("处理器 CPU", "8核16线程 4.8GHz", "12核16线程 5.0GHz", "16核24线程 5.4GHz", "14核18线程 AI 处理器"), s("显卡 Graphics", "集成显卡", "独立显卡 8GB GDDR6", "独立显卡 12GB GDDR6"), s("NPU 算力 NPU", "11 TOPS", "16 TOPS", "48 TOPS"), s("散热 Cooling", "双风扇三热管", "液金导热 + 四出风口")),
			g("内存存储 Memory & storage", s("内存容量 RAM", "16GB", "32GB", "64GB"), s("内存类型 RAM type", "LPDDR5X 7467MHz", "DDR5 5600MHz"), s("硬盘 SSD", "512GB PCIe 4.0 SSD", "1TB PCIe 4.0 SSD", "2TB PCIe 4.0 SSD"), s("扩展插槽 Expansion", "双 M.2 插槽", "不支持")),
			g("屏幕 Display", s("屏幕尺寸 Size", "13.3英寸", "14英寸", "15.6英寸", "16英寸"), s("分辨率 Resolution", "2560×1600", "2880×1800", "1920×1200", "3840×2400"), s("刷新率 Refresh rate", "60Hz", "120Hz", "165Hz", "240Hz"), s("色域 Gamut", "100% sRGB", "100% DCI-P3"), s("面板 Panel", "IPS", "OLED", "Mini LED")),
			g("接口 Ports", s("USB-C", "2个 (支持 PD 快充)", "3个 (雷电接口)"), s("USB-A", "1个 USB 3.2", "2个 USB 3.2"), s("HDMI", "HDMI 2.1", "无"), s("无线 Wireless", "Wi-Fi 6E + 蓝牙 5.3", "Wi-Fi 7 + 蓝牙 5.4"), s("电池 Battery", "70Wh", "80Wh", "99.9Wh"), s("重量 Weight", "约1.2kg", "约1.4kg", "约2.4kg")),
		},
		points: l("高性能 AI 处理器", "全天候长续航", "24期免息", "学生专享优惠", "2年上门保修"),
		sentences: l(
			"全金属一体化机身，厚度仅约 14.9mm，可以轻松放入通勤包。",
			"高色域屏幕出厂逐台校色，修图与剪辑时色彩更准确。",
			"双风扇散热模组让处理器持续以高功耗释放性能，渲染与编译更快完成。",
			"全尺寸背光键盘键程 1.5mm，大尺寸触控板支持多指手势。",
			"支持 100W 快充，充电 30 分钟即可恢复约一半电量。",
			"The all-metal body is light enough for daily commuting.",
			"A factory-calibrated display keeps colours accurate for creative work.",
		),
		box:      l("笔记本电脑 ×1", "电源适配器 ×1", "USB-C 充电线 ×1", "说明书 ×1", "保修卡 ×1"),
		themes:   l("极客电脑", "北纬科技", "Arclight 电脑", "云端办公", "硅谷数码", "Bitforge"),
		suffixes: l("专营店", "电脑专营店", "办公旗舰店"),
	},
	{
		key:    "appliance",
		name:   "家用电器 Home appliances",
		brands: l("美家", "澜湾", "Northwind", "格瑞", "海澄", "Coolway", "松禾", "Brisa"),
		model: modelStyle{prefixes: l("KFR-", "BCD-", "XQG", "TG", "MX-"), lo: 26, hi: 650,
			suffixes: l("", "A", "B", "WP", "HE")},
		modelLabel: "型号 Model",
		adjs:       l("一级能效", "变频", "智能", "家用", "大容量"),
		subs: []sub{
			{name: "空调 Air conditioners", noun: "变频空调", tmpl: "$b $0 新一级能效 变频冷暖 $a壁挂式空调 $m",
				vars: [][]string{l("大1匹", "1.5匹", "2匹", "3匹")}, lo: 1899, hi: 8999, models: l("KFR-35GW/", "KFR-50GW/", "KFR-72LW/")},
			{name: "冰箱 Refrigerators", noun: "冰箱", tmpl: "$b $0 $a十字对开门冰箱 风冷无霜 $m $1",
				vars: [][]string{l("406升", "468升", "508升", "621升"), l("星砂灰", "云母白", "玄武黑")}, lo: 2199, hi: 12999, models: l("BCD-", "BCD-W")},
			{name: "洗衣机 Washing machines", noun: "滚筒洗衣机", tmpl: "$b $0 $a滚筒洗衣机 洗烘一体 $m $1",
				vars: [][]string{l("10公斤", "12公斤", "8公斤"), l("钛晶灰", "月光白")}, lo: 1499, hi: 7999, models: l("XQG100-", "XQG120-", "TG")},
		},
		specs: []specGroup{
			g("规格 Specifications", s("能效等级 Energy class", "新一级能效", "新二级能效"), s("额定功率 Rated power", "850W", "1200W", "1560W", "2150W"), s("电压 Voltage", "220V~/50Hz"), s("噪音 Noise", "18dB(A)", "26dB(A)", "38dB(A)"), s("产品尺寸 Dimensions", "850×290×200mm", "910×700×1790mm", "595×565×850mm"), s("产品重量 Weight", "9.5kg", "68kg", "103kg")),
			g("功能 Features", s("智能控制 Smart control", "APP 远程控制", "语音控制", "不支持"), s("变频 Inverter", "直流变频", "定频"), s("自清洁 Self-cleaning", "支持", "不支持"), s("除菌 Sterilisation", "UV 除菌", "高温除菌 99.9%", "银离子除菌"), s("预约 Scheduling", "24小时预约")),
			g("售后 After-sales", s("整机保修 Warranty", "1年", "3年"), s("核心部件保修 Core parts", "6年", "10年"), s("安装 Installation", "免费上门安装", "需另行付费安装"), s("以旧换新 Trade-in", "支持", "不支持")),
		},
		points: l("新一级能效 省电", "直流变频 静音运行", "APP 智能远程控制", "送装一体 免费安装", "10年核心部件保修", "以旧换新 国家补贴", "高温除菌 健康家居"),
		sentences: l(
			"新一级能效设计，每年相比普通产品可节省可观的电费。",
			"直流变频压缩机运行平稳，夜间低至 18 分贝，不打扰睡眠。",
			"支持 APP 远程控制和语音助手，下班路上即可提前开启。",
			"内部关键部件采用防腐涂层，适应南方潮湿环境。",
			"专业师傅送货上门并安装调试，旧机可同时回收。",
			"Energy-efficient inverter technology runs quietly day and night.",
		),
		box:      l("主机 ×1", "遥控器 ×1", "安装配件包 ×1", "使用说明书 ×1", "保修卡 ×1"),
		themes:   l("悦家电器", "Northwind Home", "家电优选", "清风电器", "暖阳家电", "Homely"),
		suffixes: l("专营店", "家电馆", "电器专卖店"),
	},
	{
		key:        "apparel",
		name:       "服饰内衣 Apparel",
		brands:     l("山野", "素织", "Linden Lane", "木棉", "初白", "Urbanfit", "南舍", "Frostline"),
		model:      modelStyle{prefixes: l("T", "M", "W", "Y", "K"), lo: 1000, hi: 9999, suffixes: l("")},
		modelLabel: "货号 Style no.",
		adjs:       l("2025春季新款 ", "2025夏季新款 ", "秋冬新款 ", "宽松 ", "修身 ", "简约 ", "潮牌 "),
		subs: []sub{
			{name: "男装T恤 Men's T-shirts", noun: "男士纯棉T恤", tmpl: "$b 男士纯棉短袖T恤 $a圆领上衣 $0 $1",
				vars: [][]string{l("白色", "黑色", "雾霾蓝", "燕麦色", "军绿色"), l("S", "M", "L", "XL", "XXL")}, lo: 39, hi: 199, points: l("精选长绒棉", "不易起球 不易变形")},
			{name: "连衣裙 Dresses", noun: "连衣裙", tmpl: "$b 女士$a法式碎花连衣裙 中长款 $0 $1",
				vars: [][]string{l("米白碎花", "雾蓝", "黑色", "樱粉"), l("S", "M", "L", "XL")}, lo: 129, hi: 699, points: l("法式收腰 显瘦", "垂顺飘逸")},
			{name: "羽绒服 Down jackets", noun: "羽绒服", tmpl: "$b $a90%白鸭绒 连帽保暖羽绒服 $0 $1",
				vars: [][]string{l("黑色", "藏青", "卡其", "米白", "酒红"), l("M", "L", "XL", "XXL", "3XL")}, lo: 399, hi: 2599, points: l("90%白鸭绒 轻盈保暖", "三防面料 防风防泼水")},
		},
		specs: []specGroup{
			g("材质 Material", s("面料 Fabric", "纯棉", "天丝棉", "聚酯纤维", "锦纶"), s("成分含量 Composition", "棉 100%", "棉 95% 氨纶 5%", "聚酯纤维 100%"), s("里料 Lining", "无", "聚酯纤维"), s("填充物 Filling", "无", "90%白鸭绒", "90%白鹅绒"), s("厚薄 Thickness", "薄款", "常规", "加厚")),
			g("版型 Fit", s("版型 Fit", "宽松", "修身", "常规"), s("领型 Collar", "圆领", "V领", "连帽", "立领"), s("袖长 Sleeve", "短袖", "长袖", "无袖"), s("衣长 Length", "常规款", "中长款", "短款"), s("适用季节 Season", "春季", "夏季", "秋季", "冬季")),
			g("洗涤 Care", s("洗涤方式 Washing", "可机洗", "建议手洗", "建议干洗"), s("水温 Water temperature", "不超过30℃", "不超过40℃"), s("熨烫 Ironing", "低温熨烫", "不可熨烫"), s("晾晒 Drying", "阴凉处平铺晾干", "反面悬挂晾干")),
		},
		points: l("亲肤透气 柔软舒适", "宽松版型 遮肉显瘦", "运费险 退换无忧", "多色可选 百搭"),
		sentences: l(
			"精选优质面料，经过预缩水处理，洗后不易变形。",
			"立体剪裁贴合人体曲线，活动自如不紧绷。",
			"细密平整的走线与加固的领口，经得起反复穿着与洗涤。",
			"百搭配色，日常通勤、周末出游都能轻松驾驭。",
			"建议参考尺码表选择，介于两个尺码之间时可选大一码。",
			"Soft, breathable fabric that keeps its shape wash after wash.",
		),
		box:      l("服装 ×1", "吊牌 ×1", "合格证 ×1"),
		themes:   l("山野户外", "Linden & Co", "衣橱日记", "棉麻生活", "City Walk", "北岸"),
		suffixes: l("专营店", "服饰旗舰店", "品牌集合店"),
	},
	{
		key:        "food",
		name:       "食品饮料 Food & drink",
		brands:     l("田园记", "茶语", "Oakfield", "果然香", "山间", "谷丰", "Brewhouse", "小满"),
		model:      modelStyle{prefixes: l("F", "T", "N", "C"), lo: 100, hi: 999, suffixes: l("")},
		modelLabel: "商品编码 Item code",
		adjs:       l("特级", "新茶", "原味", "每日", "经典", "精选"),
		subs: []sub{
			{name: "茶叶 Tea", noun: "茶叶", tmpl: "$b $a$0 $1 礼盒装",
				vars: [][]string{l("明前龙井绿茶", "武夷山大红袍", "安溪铁观音", "云南普洱熟茶", "福鼎白茶"), l("250g", "500g", "100g×2罐")}, lo: 59, hi: 899},
			{name: "坚果零食 Nuts & snacks", noun: "每日坚果", tmpl: "$b $a混合坚果 $0 $1",
				vars: [][]string{l("原味", "蜂蜜味", "盐焗味", "奶香味"), l("750g/30袋", "500g/20袋", "1kg 家庭装")}, lo: 29, hi: 199},
			{name: "咖啡 Coffee", noun: "咖啡", tmpl: "$b $a$0 $1",
				vars: [][]string{l("冻干速溶咖啡", "挂耳咖啡", "咖啡豆 中深烘焙", "冷萃咖啡液"), l("2g×30颗", "10g×20包", "454g", "25ml×12条")}, lo: 19, hi: 259},
		},
		specs: []specGroup{
			g("基本信息 Basics", s("净含量 Net weight", "250g", "500g", "750g", "454g"), s("保质期 Shelf life", "12个月", "18个月", "24个月", "9个月"), s("产地 Origin", "浙江杭州", "福建安溪", "云南普洱", "新疆", "云南保山"), s("储存条件 Storage", "常温避光保存", "阴凉干燥处保存", "开封后请冷藏")),
			g("配料 Ingredients", s("配料表 Ingredients", "绿茶", "腰果、扁桃仁、核桃仁、蔓越莓干", "咖啡豆", "速溶咖啡粉"), s("过敏原 Allergens", "无", "含坚果", "含乳制品"), s("是否含糖 Sugar", "无糖", "含糖", "低糖"), s("食品生产许可证 Licence", "SC11633010600123", "SC12435052400456", "SC11253082200789")),
			g("营养成分 Nutrition (每100g)", s("能量 Energy", "1850kJ", "2450kJ", "1520kJ"), s("蛋白质 Protein", "12.5g", "18.2g", "6.1g"), s("脂肪 Fat", "0g", "45.6g", "12.3g"), s("碳水化合物 Carbohydrate", "20.1g", "38.7g", "62.4g"), s("钠 Sodium", "5mg", "120mg", "86mg")),
		},
		points: l("产地直采 新鲜到家", "0添加 配料干净", "独立小包装 锁鲜", "买2送1", "顺丰冷链", "老字号 匠心工艺", "春节送礼优选"),
		sentences: l(
			"产地直采，从采摘到发货全程可追溯，新鲜看得见。",
			"独立小包装设计，每袋一份刚刚好，办公室和出行随手可带。",
			"坚持传统工艺，低温慢焙，保留原料本身的香气。",
			"配料表干净简单，不额外添加香精与防腐剂。",
			"礼盒包装精致大方，节日送礼体面又实用。",
			"Sourced directly from growers and packed fresh for delivery.",
		),
		box:      l("商品 ×1", "礼品袋 ×1", "产品说明卡 ×1"),
		themes:   l("田园优选", "茶香", "Oakfield Pantry", "零食铺子", "好物食堂", "江南茶庄"),
		suffixes: l("专营店", "食品专营店", "官方直营店"),
	},
	{
		key:        "beauty",
		name:       "美妆护肤 Beauty",
		brands:     l("初颜", "Lumière Lab", "水漾", "花研", "Verdant", "素肌", "悦芙", "Aurelle"),
		model:      modelStyle{prefixes: l("B", "S", "L"), lo: 10, hi: 99, suffixes: l("")},
		modelLabel: "商品编码 Item code",
		adjs:       l("补水保湿", "修护", "淡纹紧致", "焕亮", "温和"),
		subs: []sub{
			{name: "面霜 Face cream", noun: "面霜", tmpl: "$b $a面霜 $0 $1",
				vars: [][]string{l("50g", "30g", "80g"), l("清爽型", "滋润型")}, lo: 89, hi: 1280, points: l("72小时长效保湿", "修护屏障")},
			{name: "精华 Serum", noun: "精华液", tmpl: "$b $a精华液 $0 $1",
				vars: [][]string{l("30ml", "50ml", "100ml"), l("单瓶装", "买一送一", "礼盒装")}, lo: 129, hi: 1680, points: l("28天焕亮肌肤", "修护屏障")},
			{name: "口红 Lipstick", noun: "口红", tmpl: "$b 丝绒哑光口红 $0 $1",
				vars: [][]string{l("#01 正红", "#02 枫叶红", "#05 豆沙", "#08 奶茶", "#12 番茄红"), l("3.5g", "3g 小样")}, lo: 59, hi: 399, points: l("丝绒哑光 不拔干", "显白百搭色号")},
		},
		specs: []specGroup{
			g("产品信息 Product", s("净含量 Net content", "50g", "30ml", "3.5g", "100ml"), s("适用肤质 Skin type", "任何肤质", "干性肌肤", "油性及混合性肌肤", "敏感肌"), s("功效 Benefits", "补水保湿", "修护屏障", "提亮肤色", "淡化细纹"), s("保质期 Shelf life", "3年", "36个月"), s("备案编号 Registration", "国妆备进字J20241234", "浙G妆网备字2024012345")),
			g("成分 Ingredients", s("核心成分 Key ingredients", "烟酰胺", "玻尿酸", "神经酰胺", "积雪草提取物", "维生素C衍生物"), s("香精 Fragrance", "无香精", "淡香"), s("酒精 Alcohol", "不含酒精", "含少量酒精"), s("质地 Texture", "乳霜", "啫喱", "水润精华")),
			g("使用 Usage", s("使用步骤 Step", "洁面、爽肤水之后", "早晚使用"), s("用量 Amount", "黄豆大小", "2–3滴"), s("注意事项 Caution", "避免接触眼睛", "首次使用请先在耳后测试"), s("适用人群 For", "女士", "男女通用")),
		},
		points: l("敏感肌可用 温和不刺激", "无香精 无酒精", "专柜同款 正品保证", "赠旅行小样"),
		sentences: l(
			"温和配方经过第三方机构皮肤测试，敏感肌也能安心使用。",
			"质地轻盈易推开，上脸迅速吸收，不黏腻不闷痘。",
			"复配多重修护成分，帮助强韧肌肤屏障，减少干燥泛红。",
			"坚持使用 28 天，肌肤看起来更加透亮有光泽。",
			"每批产品均可在国家药监局官网查询备案信息。",
			"A gentle formula, dermatologist tested for sensitive skin.",
		),
		box:      l("正装 ×1", "小样 ×2", "使用说明 ×1", "礼品袋 ×1"),
		themes:   l("美妆优选", "Lumière", "悦己", "花漾美妆", "Glow Up", "颜究所"),
		suffixes: l("专营店", "美妆专营店", "海外旗舰店"),
	},
	{
		key:        "book",
		name:       "图书音像 Books",
		brands:     l("青禾文艺出版社", "北辰科技出版社", "远山童书", "Lantern Press", "海风出版社", "知行出版社"),
		model:      modelStyle{prefixes: l("978-7-"), lo: 1000, hi: 9999, suffixes: l("")},
		modelLabel: "ISBN",
		adjs:       l("", ""),
		subs: []sub{
			{name: "小说 Fiction", noun: "小说", tmpl: "《$t》$0 $w 著",
				vars: [][]string{l("平装", "精装典藏版", "首印签名版", "套装共3册")}, lo: 29, hi: 168,
				titles: [2][]string{l("山海", "长夜", "星河", "白鹭", "远方", "旧城", "雾港", "春山", "南风", "雪国"), l("之间", "来信", "故事", "纪事", "笔记", "往事", "的回声", "以北", "漫游", "十年")}},
			{name: "计算机 Computing", noun: "技术图书", tmpl: "《$t》$0 $w 著",
				vars: [][]string{l("第2版", "第3版", "全彩印刷", "附赠源码")}, lo: 59, hi: 199,
				titles: [2][]string{l("Go 语言", "分布式系统", "深度学习", "Rust 编程", "数据库系统", "云原生架构", "算法", "高并发系统"), l("实战", "设计与实现", "从入门到精通", "原理与实践", "权威指南", "工程实践")}},
			{name: "童书 Children's books", noun: "绘本", tmpl: "《$t》$0 $w 著 3-6岁",
				vars: [][]string{l("精装绘本", "全8册", "点读版", "注音版")}, lo: 19, hi: 298,
				titles: [2][]string{l("小熊", "月亮", "恐龙", "小狐狸", "彩虹", "海豚", "小企鹅", "大象"), l("去旅行", "的秘密", "晚安故事", "大冒险", "认知绘本", "成长记")}},
		},
		specs: []specGroup{
			g("出版信息 Publication", s("版次 Edition", "1", "2", "3"), s("出版时间 Published", "2022-05-01", "2023-09-01", "2024-03-01", "2025-01-01"), s("印刷时间 Printed", "2024-06-01", "2025-02-01"), s("语种 Language", "中文", "中英双语")),
			g("装帧 Binding", s("开本 Format", "16开", "32开", "大16开"), s("纸张 Paper", "胶版纸", "轻型纸", "铜版纸"), s("页数 Pages", "256", "328", "512", "48"), s("包装 Binding", "平装", "精装"), s("字数 Words", "18万字", "32万字", "50万字")),
		},
		points: l("豆瓣高分 口碑之作", "作者亲笔签名", "随书附赠书签", "正版图书 品质保证", "全彩印刷 图文并茂", "满100减50", "教师推荐"),
		sentences: l(
			"本书获得众多读者好评，是近年来同类作品中的代表作之一。",
			"作者以细腻的笔触描绘人物与时代，读来令人回味。",
			"内容由浅入深，配合大量示例与插图，适合自学。",
			"纸张柔和护眼，装帧结实，适合长期收藏。",
			"A well-reviewed title, printed on eye-friendly paper.",
		),
		box:      l("图书 ×1", "书签 ×1"),
		themes:   l("书香", "Lantern Books", "悦读", "文轩书屋", "开卷", "Paper Moon"),
		suffixes: l("图书专营店", "书店", "图书旗舰店"),
	},
	{
		key:        "sports",
		name:       "运动户外 Sports & outdoor",
		brands:     l("疾风", "山脊", "Trailon", "跃动", "Peakline", "北坡", "极速", "Summit Co"),
		model:      modelStyle{prefixes: l("Run ", "Trek ", "Flow ", "AX", "V"), lo: 1, hi: 12, suffixes: l("", " Pro", " GTX", " 2.0")},
		modelLabel: "货号 Style no.",
		adjs:       l("专业", "轻量", "缓震", "防水", "户外"),
		subs: []sub{
			{name: "跑步鞋 Running shoes", noun: "跑步鞋", tmpl: "$b $m $a缓震跑步鞋 男女款 $0 $1",
				vars: [][]string{l("黑白", "荧光绿", "天空蓝", "珊瑚红"), l("39", "40", "41", "42", "43", "44")}, lo: 199, hi: 1299, points: l("轻量缓震 久跑不累", "耐磨防滑大底", "30天试穿")},
			{name: "帐篷 Tents", noun: "户外帐篷", tmpl: "$b $m $a自动速开帐篷 $0 $1",
				vars: [][]string{l("2人", "3-4人", "5-8人"), l("军绿色", "沙色", "橄榄绿")}, lo: 199, hi: 2999, points: l("一秒速开 免搭建", "PU3000 防雨")},
			{name: "瑜伽垫 Yoga mats", noun: "瑜伽垫", tmpl: "$b $a瑜伽垫 防滑加宽 $0 $1",
				vars: [][]string{l("6mm", "8mm", "10mm"), l("紫罗兰", "薄荷绿", "烟灰", "樱花粉")}, lo: 39, hi: 399, points: l("高回弹 不易变形", "双面防滑纹理")},
		},
		specs: []specGroup{
			g("材质 Material", s("主材质 Main material", "飞织网布", "TPE", "210T 涤纶", "天然橡胶"), s("中底 Midsole", "超临界发泡中底", "EVA", "无"), s("防水 Waterproof", "PU3000mm", "不防水", "防泼水")),
			g("规格 Size & weight", s("尺寸 Size", "183×61cm", "210×150×130cm", "标准码"), s("重量 Weight", "约230g (单只)", "约3.2kg", "约1.1kg"), s("收纳尺寸 Packed size", "65×15×15cm", "无"), s("适用人数 Capacity", "单人", "2人", "3-4人")),
			g("功能 Features", s("适用场景 Use", "路跑", "露营", "徒步", "瑜伽 普拉提"), s("缓震 Cushioning", "高缓震", "中等", "无"), s("透气性 Breathability", "高", "中"), s("防滑 Grip", "双面防滑纹理", "耐磨橡胶大底")),
		},
		points: l("专业运动员推荐", "运费险 退换无忧", "户外达人推荐"),
		sentences: l(
			"轻量化设计减轻长时间运动的负担，脚感轻盈有弹性。",
			"耐磨材料覆盖高磨损区域，延长使用寿命。",
			"速开结构几秒钟就能完成搭建，新手也能轻松上手。",
			"透气网面加快汗气排出，保持干爽舒适。",
			"Lightweight construction that stays comfortable over long distances.",
		),
		box:      l("商品 ×1", "收纳袋 ×1", "说明书 ×1"),
		themes:   l("山野户外", "Trailhead", "跑者", "极限运动", "Basecamp", "骑行者"),
		suffixes: l("专营店", "户外专营店", "运动专卖店"),
	},
	{
		key:        "toy",
		name:       "玩具乐器 Toys",
		brands:     l("乐积", "小蜂", "Brickly", "童趣", "Tinker", "奇想", "Playmoe", "布丁熊"),
		model:      modelStyle{prefixes: l("TB", "RC", "PL"), lo: 100, hi: 999, suffixes: l("")},
		modelLabel: "型号 Model",
		adjs:       l("益智", "儿童", "拼装", "创意", "生日礼物"),
		subs: []sub{
			{name: "积木 Building blocks", noun: "拼装积木", tmpl: "$b $m $a拼装积木 $0 $1",
				vars: [][]string{l("城市消防站", "太空探索站", "中式园林", "恐龙乐园", "赛车工作室"), l("1024颗粒", "568颗粒", "2300颗粒")}, lo: 49, hi: 999, points: l("图纸清晰 易拼装", "锻炼动手能力")},
			{name: "遥控车 RC cars", noun: "遥控车", tmpl: "$b $m 2.4G $a遥控越野车 四驱高速 $0 $1",
				vars: [][]string{l("1:16", "1:12", "1:18"), l("红色", "蓝色", "迷彩")}, lo: 99, hi: 699, points: l("高速四驱 越野不怕", "双电池 超长续航")},
			{name: "毛绒玩具 Plush toys", noun: "毛绒玩具", tmpl: "$b $a毛绒公仔 $0 $1",
				vars: [][]string{l("柯基", "小熊", "兔子", "水豚", "企鹅"), l("30cm", "45cm", "60cm")}, lo: 39, hi: 299, points: l("柔软亲肤 可机洗", "陪伴入睡")},
		},
		specs: []specGroup{
			g("基本信息 Basics", s("适用年龄 Age", "3岁以上", "6岁以上", "8岁以上", "14岁以上"), s("材质 Material", "ABS 塑料", "PP 棉 + 短毛绒", "合金 + ABS"), s("颗粒数 Pieces", "568", "1024", "2300", "无"), s("电池 Battery", "7.4V 锂电池", "无需电池")),
			g("安全 Safety", s("3C认证 CCC", "2024012345678901", "2023098765432109"), s("执行标准 Standard", "GB 6675-2014"), s("小零件警示 Small parts", "含小零件，3岁以下儿童禁用", "无")),
			g("包装 Package", s("包装尺寸 Box size", "48×38×8cm", "35×22×18cm", "30×20×20cm"), s("毛重 Gross weight", "1.2kg", "0.8kg", "2.1kg"), s("礼盒包装 Gift box", "是", "否")),
		},
		points: l("3C认证 安全无毒", "生日礼物优选", "精美礼盒"),
		sentences: l(
			"采用环保 ABS 材料，边角圆润，孩子玩耍更安心。",
			"拼装过程锻炼孩子的空间想象力和专注力。",
			"全比例四驱设计，草地、沙地、碎石路都能轻松驾驭。",
			"精美礼盒包装，节日和生日送礼都很合适。",
			"Made from non-toxic materials, certified to national safety standards.",
		),
		box:      l("玩具 ×1", "说明书/图纸 ×1", "备件包 ×1"),
		themes:   l("童趣玩具", "Tinker Town", "积木世界", "乐玩", "Toy Box", "好奇宝贝"),
		suffixes: l("专营店", "玩具专营店", "母婴玩具店"),
	},
	{
		key:        "furniture",
		name:       "家具家装 Furniture",
		brands:     l("木语", "北欧森林", "Hearthly", "简居", "Nordhem", "栖木", "舒适家", "Oakhaus"),
		model:      modelStyle{prefixes: l("S", "C", "D", "HF-"), lo: 100, hi: 999, suffixes: l("", "-A", "-B")},
		modelLabel: "型号 Model",
		adjs:       l("北欧", "实木", "现代简约", "人体工学", "奶油风"),
		subs: []sub{
			{name: "沙发 Sofas", noun: "布艺沙发", tmpl: "$b $a布艺沙发 $0 科技布 $1",
				vars: [][]string{l("三人位 2.1m", "四人位 2.6m", "转角 L 型"), l("燕麦色", "奶白", "雾霾蓝", "深灰")}, lo: 1299, hi: 8999},
			{name: "办公椅 Office chairs", noun: "人体工学椅", tmpl: "$b $m 人体工学椅 $a电脑椅 $0 $1",
				vars: [][]string{l("标准版", "带脚托", "头枕款"), l("黑色", "灰色", "白框灰网")}, lo: 299, hi: 3999, points: l("人体工学 久坐不累", "4D 扶手 随心调节")},
			{name: "书桌 Desks", noun: "电动升降桌", tmpl: "$b $m $a电动升降桌 $0 $1",
				vars: [][]string{l("1.2m", "1.4m", "1.6m"), l("胡桃木色", "原木色", "白色")}, lo: 699, hi: 3999},
		},
		specs: []specGroup{
			g("材质 Material", s("主材 Main material", "科技布", "北美白橡木", "E0级颗粒板", "铝合金"), s("填充物 Filling", "高回弹海绵 + 羽绒", "无"), s("框架 Frame", "实木框架", "钢制框架", "铝合金脚架"), s("环保等级 Emission", "E0级", "ENF级")),
			g("尺寸 Dimensions", s("产品尺寸 Size", "2100×950×850mm", "1400×700×720-1200mm", "680×680×1150-1250mm"), s("座高 Seat height", "420mm", "440-540mm", "无"), s("承重 Load", "150kg", "120kg", "300kg"), s("净重 Net weight", "65kg", "21kg", "38kg")),
			g("安装 Assembly", s("是否需要安装 Assembly", "需安装", "免安装"), s("安装服务 Service", "免费上门安装", "附安装视频"), s("质保 Warranty", "5年", "3年", "10年")),
		},
		points: l("E0级环保 无异味", "实木框架 稳固耐用", "免费上门安装", "5年质保", "30天无忧退换", "大件送货入户"),
		sentences: l(
			"选用 E0 级环保板材与水性漆，收货即可放心使用。",
			"人体工学设计贴合腰背曲线，长时间办公也不易疲劳。",
			"实木框架经过烘干处理，不易开裂变形。",
			"大件商品由专业师傅送货入户并免费安装。",
			"Low-emission materials and a solid frame built to last.",
		),
		box:      l("主体 ×1", "安装配件包 ×1", "安装说明书 ×1"),
		themes:   l("Northwind Home", "木语家居", "栖居", "简屋", "Hearth & Home", "安然家居"),
		suffixes: l("家居馆", "家具专营店", "旗舰店"),
	},
	{
		key:        "kitchen",
		name:       "厨具 Kitchenware",
		brands:     l("厨匠", "炊烟", "Cookwell", "苏炉", "Ironleaf", "铁锅张", "食光", "Kitchara"),
		model:      modelStyle{prefixes: l("CW", "FB", "K"), lo: 10, hi: 99, suffixes: l("", "S", "T")},
		modelLabel: "型号 Model",
		adjs:       l("不粘", "家用", "精铁", "多功能", "智能"),
		subs: []sub{
			{name: "炒锅 Woks", noun: "炒锅", tmpl: "$b $a炒锅 $0 燃气电磁炉通用 $1",
				vars: [][]string{l("30cm", "32cm", "34cm"), l("带锅盖", "不带锅盖")}, lo: 69, hi: 699, points: l("少油烟 不粘锅", "燃气电磁炉通用")},
			{name: "电饭煲 Rice cookers", noun: "电饭煲", tmpl: "$b $m $a IH电饭煲 $0 $1",
				vars: [][]string{l("3L", "4L", "5L"), l("珍珠白", "曜石黑")}, lo: 199, hi: 1599, points: l("IH电磁加热 米饭更香", "24小时预约")},
			{name: "刀具 Knives", noun: "刀具套装", tmpl: "$b $a不锈钢刀具套装 $0 $1",
				vars: [][]string{l("5件套", "7件套", "菜刀单把"), l("带刀座", "礼盒装")}, lo: 59, hi: 899, points: l("德国工艺 锋利耐用", "一体成型 不藏污")},
		},
		specs: []specGroup{
			g("材质 Material", s("主材质 Material", "精铁", "304不锈钢", "铝合金 + 不粘涂层", "5Cr15MoV 不锈钢"), s("涂层 Coating", "无涂层", "陶瓷涂层", "麦饭石涂层"), s("手柄 Handle", "木柄", "防烫胶木柄", "不锈钢一体柄")),
			g("规格 Specifications", s("尺寸 Size", "30cm", "32cm", "4L", "20cm"), s("重量 Weight", "约1.3kg", "约1.8kg", "约3.5kg"), s("适用炉灶 Hob", "燃气灶、电磁炉通用", "不适用"), s("额定功率 Power", "无", "1200W", "860W")),
			g("使用 Use & care", s("清洗 Cleaning", "可用洗碗机", "建议手洗"), s("开锅 Seasoning", "无需开锅", "首次使用需开锅"), s("保修 Warranty", "1年", "2年", "终身保修")),
		},
		points: l("304不锈钢 健康材质", "买就送 收纳架", "2年质保"),
		sentences: l(
			"锅体经过千次锻打，受热均匀，炒菜更香。",
			"IH 立体加热让每一粒米都均匀受热，口感软糯。",
			"刀刃经过真空热处理，锋利持久，不易生锈。",
			"人体工学手柄握持舒适，防烫不打滑。",
			"Evenly heated, easy to clean, built for everyday cooking.",
		),
		box:      l("商品 ×1", "说明书 ×1", "保修卡 ×1"),
		themes:   l("厨房好物", "Cookwell", "炊烟小镇", "食光厨房", "Pan & Pot", "老铁匠"),
		suffixes: l("专营店", "厨具专营店", "生活馆"),
	},
	{
		key:        "pet",
		name:       "宠物生活 Pet supplies",
		brands:     l("萌爪", "Pawsome", "喵满分", "汪星人", "Furwell", "宠爱", "Nutripaw", "小橘"),
		model:      modelStyle{prefixes: l("P", "C", "D"), lo: 10, hi: 99, suffixes: l("")},
		modelLabel: "商品编码 Item code",
		adjs:       l("全价", "无谷", "鲜肉", "低敏", "天然"),
		subs: []sub{
			{name: "猫粮 Cat food", noun: "猫粮", tmpl: "$b $a鲜肉猫粮 成猫幼猫通用 $0 $1",
				vars: [][]string{l("鸡肉味", "三文鱼味", "鸭肉梨味"), l("1.5kg", "2kg", "5.4kg", "10kg")}, lo: 49, hi: 599, points: l("鲜肉含量 ≥60%", "美毛亮毛")},
			{name: "狗粮 Dog food", noun: "狗粮", tmpl: "$b $a狗粮 中大型犬 $0 $1",
				vars: [][]string{l("牛肉味", "羊肉味", "鸡肉糙米"), l("2kg", "10kg", "15kg")}, lo: 69, hi: 699, points: l("强健骨骼", "适口性好 挑食也爱")},
			{name: "猫砂 Cat litter", noun: "猫砂", tmpl: "$b $a豆腐猫砂 $0 $1",
				vars: [][]string{l("原味", "绿茶味", "混合型"), l("2.5kg×4包", "6L×3包", "10kg")}, lo: 39, hi: 199, points: l("结团快 低粉尘", "可冲厕所")},
		},
		specs: []specGroup{
			g("基本信息 Basics", s("净含量 Net weight", "1.5kg", "2kg", "10kg", "6L×3包"), s("适用对象 For", "全阶段", "成猫", "幼犬", "成犬"), s("保质期 Shelf life", "18个月", "12个月", "24个月"), s("产地 Origin", "山东烟台", "河北邢台", "上海", "进口")),
			g("营养成分 Nutrition", s("粗蛋白 Crude protein", "≥32%", "≥38%", "≥26%"), s("粗脂肪 Crude fat", "≥12%", "≥16%", "≥10%"), s("粗纤维 Crude fibre", "≤5%", "≤4%"), s("水分 Moisture", "≤10%", "≤12%")),
			g("特点 Features", s("配方 Formula", "无谷配方", "鲜肉配方", "低敏配方"), s("添加 Additives", "0诱食剂", "无人工色素"), s("包装 Package", "可重复密封袋", "单独分装")),
		},
		points: l("无谷低敏配方", "买2送1", "宠物医生推荐"),
		sentences: l(
			"选用新鲜肉类作为第一配料，蛋白质含量高，满足毛孩子的营养需求。",
			"无谷低敏配方，减轻肠胃负担，便便更健康。",
			"添加鱼油与卵磷脂，帮助毛发柔顺亮泽。",
			"豆腐猫砂遇水快速结团，可冲入马桶，清理方便。",
			"Real meat first, with no artificial colours or flavours.",
		),
		box:      l("商品 ×1", "试吃装 ×1"),
		themes:   l("萌宠乐园", "Pawsome Pets", "喵星球", "宠物之家", "Happy Tails", "毛孩子生活"),
		suffixes: l("专营店", "宠物专营店", "宠物生活馆"),
	},
}

// views label the gallery pictures, in order.
var views = []string{"主图 Main", "正面 Front", "侧面 Side", "背面 Back", "细节 Detail", "场景 Lifestyle",
	"包装 Package", "尺寸 Size", "配件 Accessories", "颜色 Colours", "实拍 Photo", "对比 Comparison"}

var surnames = l("林", "陈", "王", "张", "李", "周", "吴", "赵", "孙", "沈", "顾", "许")
var givenNames = l("远", "清", "一鸣", "晓雨", "子墨", "安然", "北", "若溪", "文博", "书航", "听澜", "知秋")

var origins = l("中国大陆", "广东深圳", "浙江宁波", "江苏苏州", "广东佛山", "福建厦门", "上海", "山东青岛")

var cities = []struct{ full, short string }{
	{"广东 深圳", "深圳"}, {"浙江 杭州", "杭州"}, {"上海", "上海"}, {"北京", "北京"}, {"江苏 苏州", "苏州"},
	{"福建 厦门", "厦门"}, {"四川 成都", "成都"}, {"湖北 武汉", "武汉"}, {"广东 广州", "广州"}, {"浙江 宁波", "宁波"},
	{"山东 青岛", "青岛"}, {"重庆", "重庆"}, {"陕西 西安", "西安"}, {"湖南 长沙", "长沙"}, {"江苏 南京", "南京"},
	{"天津", "天津"}, {"广东 佛山", "佛山"}, {"浙江 义乌", "义乌"}, {"云南 昆明", "昆明"}, {"辽宁 大连", "大连"},
}

var badges = l("品质保障 Quality", "极速退款 Fast refund", "七天无理由 7-day returns", "正品保证 Authentic",
	"金牌卖家 Gold seller", "顺丰包邮 Free SF shipping", "假一赔四 Authenticity guarantee", "闪电发货 Ships in 24h")

const officialBadge = "官方旗舰 Official"

var afterSales = l(
	"本商品支持七天无理由退货（商品完好、不影响二次销售）。质量问题 15 天内可换货，退换货运费由商家承担。",
	"商品享受全国联保，凭购买凭证可在当地授权服务网点享受保修服务。如有疑问请联系在线客服，我们将在 24 小时内回复。",
	"下单后 48 小时内发货，偏远地区除外。收货时请当面检查外包装，如有破损请拒收并联系客服。",
	"Returns are accepted within 7 days of delivery. Contact customer service any time for help.",
)
